//! [`SourceError`]: every failure of the sources' public functions.

use crate::sources::kube::KubeError;

/// What a source could not do: follow pod logs (retrying cannot fix it), or record the pods
/// it watches. The `Display` of each is one line; the cause is also its
/// [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The pod-log source stopped.
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// Pod rows that cannot be encoded for the `pods` table.
    #[error("pods batch: {0}")]
    PodsBatch(#[source] arrow::error::ArrowError),
    /// A `pods` part that cannot be written (the lake's error, with the path).
    #[error("{0}")]
    Publish(#[source] crate::lake::LakeError),
}

impl SourceError {
    /// A bounded label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            SourceError::Kube(k) => k.metric_label(),
            SourceError::PodsBatch(_) | SourceError::Publish(_) => "pods_table",
        }
    }
}
