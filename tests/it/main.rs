//! The one integration test binary: each module drives `orch` (or its library) for one capability.
mod support;

mod canary;
mod check;
mod cli;
mod config;
mod cost;
mod deploy;
mod hostile;
mod image;
mod local;
mod logs;
mod ops;
mod render;
mod rollout;
mod scaling;
mod verify;
