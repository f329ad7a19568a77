//! A lake refused before anything is read or written: a malformed `s3://` location, a store
//! setting the store does not know, a hub name that is not a portable partition. Nested in
//! [`super::LakeError::Config`], the lake's one error; each is one line naming the location.

/// What is wrong with where (or for which hub) a lake was asked for.
#[derive(Debug, thiserror::Error)]
pub enum LakeConfigError {
    #[error("{url}: not an s3:// URL")]
    NotS3 { url: String },
    #[error("{url}: no bucket (expected s3://bucket/prefix)")]
    NoBucket { url: String },
    #[error("{url}: bad bucket name {bucket:?} (expected s3://bucket/prefix)")]
    BadBucket { url: String, bucket: String },
    #[error("{url}: bad prefix: {source}")]
    BadPrefix {
        url: String,
        source: object_store::path::Error,
    },
    /// A bucket name the URL parser refuses (registering the store with DataFusion).
    #[error("{url}: {source}")]
    BucketUrl {
        url: String,
        source: url::ParseError,
    },
    /// An explicit store setting the store does not know.
    #[error("{url}: {key}: {source}")]
    Setting {
        url: String,
        key: String,
        source: Box<object_store::Error>,
    },
    /// The store's client could not be built from its settings.
    #[error("{url}: {source}")]
    Build {
        url: String,
        source: Box<object_store::Error>,
    },
    /// The store client's private runtime could not be started.
    #[error("{url}: {source}")]
    Runtime { url: String, source: std::io::Error },
    #[error(
        "hub {hub:?}: a hub name is a lake partition (hub={hub}); use 1-63 of A-Z a-z 0-9 . _ -, starting with a letter or digit"
    )]
    BadHub { hub: String },
}
