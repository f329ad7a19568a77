//! Where a lake lives, parsed once: from `--lake` on the command line or `lake.path` in the
//! agent's config, into a [`LakeLocation`] that every layer below takes as it is (no layer
//! looks at a path string again to tell a bucket from a directory).
//!
//! `s3://bucket/prefix` (or `s3a://…`) is an S3 bucket prefix; anything else is a local
//! directory. A malformed `s3://` location (no bucket, a bad prefix) is refused where it is
//! read, with one line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path as ObjPath;

use super::{LakeConfigError, LakeError};

/// A lake root: a local directory (or a shared file system), or an S3 bucket prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LakeLocation {
    Local(PathBuf),
    S3(S3Url),
}

/// An S3 bucket and a key prefix inside it (`s3://bucket/prefix`; the prefix may be empty),
/// with optional store settings over the AWS environment's.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Url {
    bucket: String,
    /// Segments joined by `/`, without a leading or trailing one.
    prefix: String,
    /// `object_store`'s `AmazonS3ConfigKey` names and values (`aws_endpoint`, …).
    options: Vec<(String, String)>,
}

impl std::fmt::Debug for S3Url {
    /// The URL and the names of the explicit settings; never their values (a secret key).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.options.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("S3Url")
            .field("url", &self.to_string())
            .field("options", &keys)
            .finish()
    }
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

impl S3Url {
    /// Parse `s3://bucket[/prefix]` (or `s3a://`).
    ///
    /// # Errors
    /// One line naming the location: no bucket, a bucket that is not a host name, a prefix
    /// with empty, `.` or `..` segments.
    pub fn parse(s: &str) -> Result<S3Url, LakeError> {
        let url = || s.to_string();
        let rest = s
            .strip_prefix("s3://")
            .or_else(|| s.strip_prefix("s3a://"))
            .ok_or_else(|| LakeConfigError::NotS3 { url: url() })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(LakeConfigError::NoBucket { url: url() }.into());
        }
        let host_ok = bucket.len() <= 255
            && bucket
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if !host_ok {
            return Err(LakeConfigError::BadBucket {
                url: url(),
                bucket: bucket.to_string(),
            }
            .into());
        }
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            ObjPath::parse(prefix)
                .map_err(|source| LakeConfigError::BadPrefix { url: url(), source })?;
        }
        Ok(S3Url {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            options: Vec::new(),
        })
    }

    /// The same location with explicit store settings (`object_store`'s `AmazonS3ConfigKey`
    /// names: `aws_endpoint`, `aws_access_key_id`, …) over the environment's.
    #[must_use]
    pub fn with_options(mut self, options: &[(&str, &str)]) -> S3Url {
        self.options = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix inside the bucket (`""` for the bucket's root).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `rel` (`/`-separated, relative to this prefix) under this prefix.
    #[must_use]
    pub fn join(&self, rel: &str) -> S3Url {
        let mut prefix = self.prefix.clone();
        for seg in rel.split('/').filter(|s| !s.is_empty()) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(seg);
        }
        S3Url {
            prefix,
            ..self.clone()
        }
    }

    /// `s3://bucket`, the URL an object store is registered under (DataFusion).
    ///
    /// # Errors
    /// A bucket name the URL parser refuses.
    pub fn bucket_url(&self) -> Result<url::Url, LakeError> {
        url::Url::parse(&format!("s3://{}", self.bucket)).map_err(|source| {
            LakeConfigError::BucketUrl {
                url: self.to_string(),
                source,
            }
            .into()
        })
    }

    /// The object store of this bucket (credentials and endpoint from the AWS environment, see
    /// [`super::store`], then the explicit settings), and the prefix inside it.
    ///
    /// # Errors
    /// A setting the store does not know, or a store that cannot be built.
    pub fn store(&self) -> Result<(Arc<dyn ObjectStore>, ObjPath), LakeError> {
        let options: Vec<(&str, &str)> = self
            .options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        super::store::s3_store_with(self, &options)
    }
}

impl std::fmt::Display for LakeLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LakeLocation::Local(p) => write!(f, "{}", p.display()),
            LakeLocation::S3(u) => u.fmt(f),
        }
    }
}

impl LakeLocation {
    /// `s3://…` (or `s3a://…`) is a bucket prefix; anything else is a local directory.
    ///
    /// # Errors
    /// A malformed `s3://` location (see [`S3Url::parse`]).
    pub fn parse(s: &str) -> Result<LakeLocation, LakeError> {
        if s.starts_with("s3://") || s.starts_with("s3a://") {
            S3Url::parse(s).map(LakeLocation::S3)
        } else {
            Ok(LakeLocation::Local(PathBuf::from(s)))
        }
    }

    /// [`LakeLocation::parse`] of a path as the command line or a config gives it (a path that
    /// is not UTF-8 is a local one).
    ///
    /// # Errors
    /// A malformed `s3://` location.
    pub fn from_path(p: &Path) -> Result<LakeLocation, LakeError> {
        match p.to_str() {
            Some(s) => LakeLocation::parse(s),
            None => Ok(LakeLocation::Local(p.to_path_buf())),
        }
    }

    /// A local directory.
    pub fn local(p: impl Into<PathBuf>) -> LakeLocation {
        LakeLocation::Local(p.into())
    }

    pub fn is_remote(&self) -> bool {
        matches!(self, LakeLocation::S3(_))
    }

    /// The directory, when the lake is local.
    pub fn as_local(&self) -> Option<&Path> {
        match self {
            LakeLocation::Local(p) => Some(p),
            LakeLocation::S3(_) => None,
        }
    }

    /// `rel` (`/`-separated: a table, `table/hub=x`) under the lake root.
    #[must_use]
    pub fn join(&self, rel: &str) -> LakeLocation {
        match self {
            LakeLocation::Local(p) => {
                let mut p = p.clone();
                for seg in rel.split('/').filter(|s| !s.is_empty()) {
                    p.push(seg);
                }
                LakeLocation::Local(p)
            }
            LakeLocation::S3(u) => LakeLocation::S3(u.join(rel)),
        }
    }

    /// A directory on this machine for one hub's local state (the Datadog spool): inside the
    /// lake (`<lake>/_hubpulse/hubs/<hub>`) when the lake is a directory; for a lake in an
    /// object store, `$HUBPULSE_STATE_DIR/<hub>` (default: the system temporary directory),
    /// which a Kubernetes deployment should put on a volume that outlives the pod.
    pub fn state_dir(&self, hub: &str) -> PathBuf {
        match self {
            LakeLocation::Local(root) => root.join(super::manifest::meta_rel(hub)),
            LakeLocation::S3(_) => std::env::var_os("HUBPULSE_STATE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| std::env::temp_dir().join("hubpulse"))
                .join(hub),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn buckets_and_directories() {
        let l = LakeLocation::parse("s3://b/p/q/").unwrap();
        let LakeLocation::S3(u) = &l else {
            panic!("{l:?}")
        };
        assert_eq!((u.bucket(), u.prefix()), ("b", "p/q"));
        assert_eq!(l.to_string(), "s3://b/p/q");
        assert!(l.is_remote() && l.as_local().is_none());
        let a = LakeLocation::parse("s3a://b").unwrap();
        assert_eq!(a.to_string(), "s3://b");
        assert_eq!(
            LakeLocation::parse("/var/lib/lake").unwrap(),
            LakeLocation::local("/var/lib/lake")
        );
        // Not a URL: a (strange) relative directory.
        assert!(!LakeLocation::parse("s3:/x").unwrap().is_remote());
    }

    #[test]
    fn a_malformed_bucket_url_is_one_line() {
        for (bad, why) in [
            ("s3:///nobucket", "no bucket"),
            ("s3://", "no bucket"),
            ("s3://my bucket/p", "bad bucket name"),
            ("s3://b/a//c", "bad prefix"),
            ("s3://b/a/../c", "bad prefix"),
        ] {
            let e = LakeLocation::parse(bad).unwrap_err();
            assert!(matches!(e, LakeError::Config(_)), "{bad}: {e:?}");
            let e = e.to_string();
            assert!(e.starts_with(bad) && e.contains(why), "{bad}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn a_bad_prefix_keeps_the_store_s_error_as_its_source() {
        let e = LakeLocation::parse("s3://b/a//c").unwrap_err();
        assert!(std::error::Error::source(&e).is_some(), "{e:?}");
    }

    #[test]
    fn tables_join_under_the_root() {
        let s3 = LakeLocation::parse("s3://b/lake").unwrap();
        assert_eq!(
            s3.join("decisions/hub=h").to_string(),
            "s3://b/lake/decisions/hub=h"
        );
        let bare = LakeLocation::parse("s3://b").unwrap();
        assert_eq!(bare.join("events").to_string(), "s3://b/events");
        assert_eq!(
            LakeLocation::local("/l").join("pods/hub=h"),
            LakeLocation::local("/l/pods/hub=h")
        );
    }

    #[test]
    fn settings_are_named_but_never_shown() {
        let u = S3Url::parse("s3://b/p")
            .unwrap()
            .with_options(&[("aws_secret_access_key", "s3cr3t")]);
        let shown = format!("{u:?} {u}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("aws_secret_access_key"), "{shown}");
    }
}
