//! The acceptance suite (placeholder while being written).
