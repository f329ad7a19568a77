//! The configuration layer's one error: a file's value refused at its position
//! (`NAME:LINE:COL: key: why`), or a duration or size that does not read.

use std::fmt;

/// `:LINE:COL` after a file name, or nothing when the position is not known (a key that is
/// missing, or a value that came from a default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct At(pub Option<(usize, usize)>);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some((line, col)) => write!(f, ":{line}:{col}"),
            None => Ok(()),
        }
    }
}

/// Every error of `config`: each is one line, as the user sees it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML parser refused the text (syntax, or a value of the wrong type): `NAME:LINE:COL: why`.
    #[error("{file}{at}: {why}")]
    Toml {
        file: String,
        at: At,
        /// The parser's message on one line.
        why: String,
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A value the file's own rules refuse: `NAME:LINE:COL: key: why`, placed at the key.
    #[error("{file}{at}: {key}: {why}")]
    Invalid {
        file: String,
        at: At,
        key: String,
        why: String,
    },
    /// A duration (`250ms`, `5m`) or size (`64KiB`) that does not read.
    #[error("invalid {what} {text:?} (use e.g. {hint})")]
    Unit {
        what: &'static str,
        text: String,
        hint: &'static str,
    },
}
