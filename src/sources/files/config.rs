//! The `[[files]]` source's settings, validated by the agent's config.

use std::time::Duration;

use serde::Deserialize;

/// Where to start in a file seen for the first time (no checkpoint), found at startup.
/// Files that appear while the agent runs are always read from their beginning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    #[default]
    Beginning,
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FileSourceConfig {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub start_at: StartAt,
    pub max_line_bytes: usize,
    /// How often files are polled for new bytes when idle (append-to-record latency).
    pub poll_interval: Duration,
    /// How often the globs are re-evaluated to discover new and rotated files.
    pub glob_interval: Duration,
    /// A rotated (renamed or deleted) file is kept open and read until it has been quiet
    /// this long; then its held partial last line, if any, is emitted and it is let go.
    pub rotate_wait: Duration,
}

impl Default for FileSourceConfig {
    fn default() -> Self {
        FileSourceConfig {
            include: Vec::new(),
            exclude: Vec::new(),
            start_at: StartAt::Beginning,
            max_line_bytes: 64 * 1024,
            poll_interval: Duration::from_millis(20),
            glob_interval: Duration::from_millis(500),
            rotate_wait: Duration::from_secs(5),
        }
    }
}
