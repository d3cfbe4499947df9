//! # kurier-config — the typed configuration file
//!
//! Owns `kurier.toml`: its keys, their defaults, and every check on their values. Each error
//! names the file, the key, the bad value and the fix, in one line, so an operator never has
//! to guess. The documented example of every key is `kurier.example.toml` at the repository
//! root; a test keeps it in step with this code.
//!
//! Must not: do I/O beyond reading the one file, or know what the values are used for (whether
//! a certificate file is good is the `tls` crate's question, asked by the binary).

#![forbid(unsafe_code)]

mod error;
mod model;

pub use error::ConfigError;
pub use model::*;

use std::path::Path;

/// Reads and checks the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Parses and checks configuration text; `origin` names the file in errors.
pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
    let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::syntax(origin, text, &e))?;
    let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::from_serde(origin, text, key, e.into_inner())
    })?;
    config
        .validate()
        .map_err(|(key, value, problem, fix)| ConfigError::Invalid {
            path: origin.to_owned(),
            key,
            value,
            problem,
            fix,
        })?;
    Ok(config)
}
