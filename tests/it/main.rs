//! The one integration test binary: each module drives `orch` (or its library) for one capability.
mod support;

mod cli;
mod config;
mod image;
