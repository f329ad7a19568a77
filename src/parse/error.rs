//! The parsing layer's one error: a catalogue that cannot be read or compiled, or a time zone
//! that does not exist. Each is one line naming the file (or the value) at fault.

use std::path::PathBuf;

/// Every error of `parse`.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    /// A catalogue file that is not valid TOML for the catalogue's format.
    #[error("{file}: {}", one_line(&.source.to_string()))]
    Toml {
        file: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error(
        "{file}: unknown family {family:?} (expected one of hub, singleuser, culler, chp, python, unknown)"
    )]
    UnknownFamily { file: PathBuf, family: String },
    /// The patterns of a family that do not compile together.
    #[error("{file}: {}", one_line(&.source.to_string()))]
    PatternSet {
        file: PathBuf,
        source: Box<regex_automata::meta::BuildError>,
    },
    /// One kind's pattern that does not compile.
    #[error("{file}: kind {kind:?}: bad pattern: {}", one_line(&.source.to_string()))]
    Pattern {
        file: PathBuf,
        kind: String,
        source: Box<regex::Error>,
    },
    /// One kind that breaks a rule of the catalogue (its name, fields or example).
    #[error("{file}: kind {kind:?}: {msg}")]
    Entry {
        file: PathBuf,
        kind: String,
        msg: String,
    },
    #[error("{dir}: no *.toml catalogue files found")]
    Empty { dir: PathBuf },
    #[error("unknown time zone {name:?} (expected an IANA name such as UTC or Europe/Paris)")]
    UnknownZone {
        name: String,
        source: chrono_tz::ParseError,
    },
}

/// An error's text on one line (regex and TOML errors span several).
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
