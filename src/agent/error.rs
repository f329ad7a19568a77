//! [`AgentError`]: why the agent could not start, or stopped with a failure.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::ConfigError;
use crate::control::ControlError;
use crate::lake::manifest::LakeError;
use crate::parse::ParseError;

/// Every failure of `hubpulse run` below the command line. The `Display` of each is the one
/// line the CLI prints; the cause is also its [`std::error::Error::source`].
/// [`AgentError::is_input`] tells the configuration's faults (exit 2) from failures while
/// running (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The config file cannot be read.
    #[error("{}: {source}", path.display())]
    ConfigRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The configuration is invalid: the config layer's one line, with the file, the line and
    /// the key.
    #[error("{0}")]
    ConfigInvalid(#[source] ConfigError),
    /// A `--follow` glob that is not a pattern.
    #[error("--follow {glob:?}: {source}")]
    Follow {
        glob: String,
        #[source]
        source: glob::PatternError,
    },
    /// The parser catalogue cannot be loaded.
    #[error("catalogue: {0}")]
    Catalogue(#[source] ParseError),
    /// The lake cannot be opened for writing.
    #[error("lake.path: {0}")]
    LakeOpen(#[source] LakeError),
    /// The HTTP address cannot be bound.
    #[error("http.listen {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// No usable cluster configuration for `what` (`kubernetes`, `pods`).
    #[error("{what}: no usable cluster config: {source}")]
    Cluster {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    /// The control loops (culler, quotas, capacity) cannot start: a configuration problem.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// A thread cannot be started.
    #[error("thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The pipeline thread panicked.
    #[error("pipeline thread panicked")]
    PipelinePanicked,
    /// The pipeline failed writing the lake (or found it held by another agent).
    #[error(transparent)]
    Lake(#[from] LakeError),
}

impl AgentError {
    /// Whether the configuration or the environment is at fault (exit 2), rather than
    /// something that failed while running (exit 1).
    pub fn is_input(&self) -> bool {
        match self {
            AgentError::ConfigRead { .. }
            | AgentError::ConfigInvalid(_)
            | AgentError::Follow { .. }
            | AgentError::Catalogue(_)
            | AgentError::LakeOpen(_)
            | AgentError::Listen { .. }
            | AgentError::Cluster { .. }
            | AgentError::Control(_)
            | AgentError::Lake(LakeError::Locked { .. } | LakeError::Format { .. }) => true,
            AgentError::Thread(_) | AgentError::PipelinePanicked | AgentError::Lake(_) => false,
        }
    }
}
