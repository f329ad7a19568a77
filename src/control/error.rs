//! [`ControlError`]: every failure of the control loops' public functions.

use std::path::PathBuf;

use crate::control::capacity::runner::CapacityError;
use crate::hub::HubError;

/// What the culler, the quotas and admission, or the capacity loop could not do. The
/// `Display` of each is one line (never a token); the cause is also its
/// [`std::error::Error::source`]. [`ControlError::is_input`] tells the configuration's faults
/// (exit 2) from failures while working (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Neither `hub.api_url` nor `JUPYTERHUB_API_URL`.
    #[error("hub.api_url is not set and neither is JUPYTERHUB_API_URL")]
    NoHubUrl,
    /// A token file that cannot be read (`what`: which token).
    #[error("{what}: {}: {source}", path.display())]
    TokenRead {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No token: the variable is not set.
    #[error("{what}: {var} is not set")]
    TokenUnset { what: &'static str, var: String },
    /// A blank token file.
    #[error("{what}: {}: empty token", path.display())]
    TokenEmptyFile { what: &'static str, path: PathBuf },
    /// A blank token variable.
    #[error("{what}: {var} is empty")]
    TokenEmpty { what: &'static str, var: String },
    /// The hub client cannot be built (a bad URL, no HTTP client).
    #[error(transparent)]
    HubClient(HubError),
    /// The hub's API failed during a pass.
    #[error(transparent)]
    HubApi(HubError),
    /// A policy file that cannot be read.
    #[error("{}: {source}", path.display())]
    PolicyRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A policy that is not valid: one line `FILE:LINE:COL: why` (or `FILE: why`).
    #[error("{0}")]
    PolicyInvalid(String),
    /// No usable cluster configuration for the capacity loop.
    #[error("capacity: no usable cluster config: {0}")]
    Cluster(#[source] kube::Error),
    /// The capacity loop's Kubernetes calls or its forecast.
    #[error(transparent)]
    Capacity(#[from] CapacityError),
    /// Rows that cannot be encoded for the lake table `table`.
    #[error("{table} batch: {source}")]
    Batch {
        table: &'static str,
        #[source]
        source: arrow::error::ArrowError,
    },
    /// A side-table part that cannot be written (the lake's error, with the path).
    #[error("{0}")]
    Publish(#[source] crate::lake::LakeError),
    /// The month's usage cannot be read from the lake (the lake's or the query's message).
    #[error("{0}")]
    Usage(String),
}

impl ControlError {
    /// Whether the configuration is at fault (exit 2), rather than something that failed
    /// while working (exit 1).
    pub fn is_input(&self) -> bool {
        match self {
            ControlError::NoHubUrl
            | ControlError::TokenRead { .. }
            | ControlError::TokenUnset { .. }
            | ControlError::TokenEmptyFile { .. }
            | ControlError::TokenEmpty { .. }
            | ControlError::HubClient(_)
            | ControlError::PolicyRead { .. }
            | ControlError::PolicyInvalid(_)
            | ControlError::Cluster(_) => true,
            ControlError::HubApi(_)
            | ControlError::Capacity(_)
            | ControlError::Batch { .. }
            | ControlError::Publish(_)
            | ControlError::Usage(_) => false,
        }
    }
}
