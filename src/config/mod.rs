//! Values every layer's configuration shares, parsed once into types: durations, sizes,
//! Kubernetes quantities; and the TOML helpers that report errors at the exact position.

mod error;
pub mod quantity;
pub mod toml;
pub mod units;

pub use error::{At, ConfigError};
