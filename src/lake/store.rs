//! A lake in an S3 bucket prefix (`s3://bucket/prefix`, any S3-compatible store; see
//! [`super::location`]) reached through `object_store`; or else a local directory (or a shared
//! file system such as EFS).
//!
//! The lake's layout is the same on both (see [`super::manifest`]); only the primitive
//! operations differ. On a file system a part is published by `rename(2)`; on S3 an object
//! appears whole or not at all when its PUT (or its multipart upload) completes, and a commit
//! is made with a conditional PUT (`If-None-Match: *`), so two writers can never both own the
//! same commit number.
//!
//! Credentials and endpoint come from the standard AWS environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`, web identity
//! (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`, as EKS IRSA sets them), ECS container
//! credentials, then the EC2 instance metadata service). `AWS_ENDPOINT_URL` points at an
//! S3-compatible store; an `http://` endpoint is allowed because it was asked for explicitly.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::location::S3Url;
use super::{LakeConfigError, LakeError};

/// Parts bigger than this go up as a multipart upload (S3 caps a single PUT at 5 GiB).
const SINGLE_PUT_MAX: u64 = 64 << 20;
const MULTIPART_CHUNK: usize = 16 << 20;

/// A hub name is a path segment of the lake (`hub=<name>`): keep it portable across engines.
pub fn check_hub(hub: &str) -> Result<(), LakeError> {
    let ok = !hub.is_empty()
        && hub.len() <= 63
        && hub
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && hub.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(LakeConfigError::BadHub {
            hub: hub.to_string(),
        }
        .into())
    }
}

/// The object store of `url`'s bucket, with `options` (`object_store`'s `AmazonS3ConfigKey`
/// names: `aws_endpoint`, `aws_access_key_id`, `aws_secret_access_key`, `aws_region`, …) over
/// the environment's; returns it with the prefix inside the bucket. See [`S3Url::store`].
pub(crate) fn s3_store_with(
    url: &S3Url,
    options: &[(&str, &str)],
) -> Result<(Arc<dyn ObjectStore>, ObjPath), LakeError> {
    let prefix = ObjPath::parse(url.prefix()).map_err(|source| LakeConfigError::BadPrefix {
        url: url.to_string(),
        source,
    })?;
    let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(url.bucket());
    let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .or_else(|_| std::env::var("AWS_ENDPOINT"))
        .unwrap_or_default();
    if endpoint.starts_with("http://") {
        b = b.with_allow_http(true);
    }
    if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
        b = b.with_region("us-east-1");
    }
    for (k, v) in options {
        let key = k
            .parse::<object_store::aws::AmazonS3ConfigKey>()
            .map_err(|e| LakeConfigError::Setting {
                url: url.to_string(),
                key: k.to_string(),
                source: Box::new(e),
            })?;
        if matches!(key, object_store::aws::AmazonS3ConfigKey::Endpoint) && v.starts_with("http://")
        {
            b = b.with_allow_http(true);
        }
        b = b.with_config(key, *v);
    }
    let store = b.build().map_err(|e| LakeConfigError::Build {
        url: url.to_string(),
        source: Box::new(e),
    })?;
    Ok((Arc::new(store), prefix))
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Store(#[from] object_store::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the object-store runtime stopped")]
    Gone,
}

/// A lake root in an object store, driven from synchronous code (the lake writer runs on its own
/// thread): every call runs on a small private runtime and waits for its answer.
///
/// This is the one runtime besides the process's (built in `app`), on purpose: the synchronous
/// calls are also made from tasks *on* the process's runtime (the decision and pods side tables
/// publish their parts from the control loops and the pods watch), and they block their thread
/// until the object store answers. Were that answer computed on the same runtime, every worker
/// (two) could be blocked waiting for work that needs a worker: a deadlock. On a runtime of its
/// own the request always has threads to run on, whichever thread waits for it.
pub struct Remote {
    pub url: String,
    store: Arc<dyn ObjectStore>,
    prefix: ObjPath,
    rt: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("url", &self.url).finish()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // Dropping a runtime blocks; inside an async context that panics, so detach it instead.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Remote {
    /// A client of the lake root `url` (its settings included, see [`S3Url::store`]).
    pub fn open(url: &S3Url) -> Result<Remote, LakeError> {
        let (store, prefix) = url.store()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("hubpulse-s3")
            .enable_all()
            .build()
            .map_err(|source| LakeConfigError::Runtime {
                url: url.to_string(),
                source,
            })?;
        Ok(Remote {
            url: url.to_string(),
            store,
            prefix,
            rt: Some(rt),
        })
    }

    /// The object key of a lake-relative path (`events/hub=a/dt=…/part-….parquet`).
    pub fn key(&self, rel: &str) -> ObjPath {
        let mut k = self.prefix.clone();
        for seg in rel.split('/').filter(|s| !s.is_empty()) {
            k = k.clone().join(seg);
        }
        k
    }

    fn rel_of(&self, key: &ObjPath) -> String {
        let full = key.as_ref();
        let p = self.prefix.as_ref();
        if p.is_empty() {
            full.to_string()
        } else {
            full.strip_prefix(p)
                .map(|s| s.trim_start_matches('/').to_string())
                .unwrap_or_else(|| full.to_string())
        }
    }

    fn block<F, T>(&self, fut: F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
    {
        let rt = self.rt.as_ref().ok_or(StoreError::Gone)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| StoreError::Gone)?
    }

    /// The object's bytes, or `None` if there is none.
    pub fn read_opt(&self, rel: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (store, key) = (self.store.clone(), self.key(rel));
        self.block(async move {
            match store.get(&key).await {
                Ok(r) => Ok(Some(r.bytes().await?.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
    }

    /// Every object under `rel_dir/` (recursively), as lake-relative paths with their sizes.
    pub fn list(&self, rel_dir: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let (store, key) = (self.store.clone(), self.key(rel_dir));
        let keys = self.block(async move {
            let mut out = Vec::new();
            let mut s = store.list(Some(&key));
            while let Some(m) = s.next().await {
                let m = m?;
                out.push((m.location, m.size));
            }
            Ok(out)
        })?;
        Ok(keys
            .into_iter()
            .map(|(k, n)| (self.rel_of(&k), n))
            .collect())
    }

    /// The immediate sub-"directories" of `rel_dir/` (their last segment).
    pub fn list_dirs(&self, rel_dir: &str) -> Result<Vec<String>, StoreError> {
        let (store, key) = (self.store.clone(), self.key(rel_dir));
        self.block(async move {
            let r = store.list_with_delimiter(Some(&key)).await?;
            Ok(r.common_prefixes
                .iter()
                .filter_map(|p| p.filename().map(str::to_string))
                .collect())
        })
    }

    /// Overwrite (or create) an object: atomic, readers see the old or the new bytes.
    pub fn put(&self, rel: &str, body: Vec<u8>) -> Result<(), StoreError> {
        let (store, key) = (self.store.clone(), self.key(rel));
        self.block(async move {
            store.put(&key, PutPayload::from(body)).await?;
            Ok(())
        })
    }

    /// Create an object only if none exists: `Ok(false)` when another writer got there first.
    pub fn create(&self, rel: &str, body: Vec<u8>) -> Result<bool, StoreError> {
        let (store, key) = (self.store.clone(), self.key(rel));
        self.block(async move {
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            match store.put_opts(&key, PutPayload::from(body), opts).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
                Err(e) => Err(e.into()),
            }
        })
    }

    /// Upload a local file to `rel`: one PUT, or a multipart upload for a big one (invisible
    /// until completed; an interrupted one leaves no object).
    pub fn upload(&self, rel: &str, file: &Path) -> Result<(), StoreError> {
        let io = |e| StoreError::Io {
            path: file.to_path_buf(),
            source: e,
        };
        let size = std::fs::metadata(file).map_err(io)?.len();
        let (store, key) = (self.store.clone(), self.key(rel));
        if size <= SINGLE_PUT_MAX {
            let body = std::fs::read(file).map_err(io)?;
            return self.block(async move {
                store.put(&key, PutPayload::from(body)).await?;
                Ok(())
            });
        }
        let path = file.to_path_buf();
        self.block(async move {
            use std::io::Read;
            let upload = store.put_multipart(&key).await?;
            let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, MULTIPART_CHUNK);
            let mut f = std::fs::File::open(&path).map_err(|e| StoreError::Io {
                path: path.clone(),
                source: e,
            })?;
            let mut buf = vec![0u8; MULTIPART_CHUNK];
            loop {
                let n = f.read(&mut buf).map_err(|e| StoreError::Io {
                    path: path.clone(),
                    source: e,
                })?;
                if n == 0 {
                    break;
                }
                w.wait_for_capacity(4).await?;
                w.write(&buf[..n]);
            }
            w.finish().await?;
            Ok(())
        })
    }

    /// Server-side copy (overwrites `to`).
    pub fn copy(&self, from: &str, to: &str) -> Result<(), StoreError> {
        let (store, f, t) = (self.store.clone(), self.key(from), self.key(to));
        self.block(async move {
            store.copy(&f, &t).await?;
            Ok(())
        })
    }

    /// Delete an object; one that is already gone is not an error.
    pub fn delete(&self, rel: &str) -> Result<(), StoreError> {
        let (store, key) = (self.store.clone(), self.key(rel));
        self.block(async move {
            match store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
    }

    pub fn exists(&self, rel: &str) -> Result<bool, StoreError> {
        let (store, key) = (self.store.clone(), self.key(rel));
        self.block(async move {
            match store.head(&key).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(e.into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_names_are_portable_path_segments() {
        for ok in ["jupyterhub", "prod-eu.1", "a", "hub_2"] {
            assert!(check_hub(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a/b",
            "_x",
            ".x",
            "x y",
            "dt=1",
            &"h".repeat(64),
            "héllo",
        ] {
            assert!(check_hub(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_are_under_the_prefix() {
        let r = Remote::open(&S3Url::parse("s3://bucket/some/prefix").unwrap()).unwrap();
        let k = r.key("events/hub=a/dt=2026-11-01/part-1.parquet");
        assert_eq!(
            k.as_ref(),
            "some/prefix/events/hub=a/dt=2026-11-01/part-1.parquet"
        );
        assert_eq!(r.rel_of(&k), "events/hub=a/dt=2026-11-01/part-1.parquet");
        let bare = Remote::open(&S3Url::parse("s3://bucket").unwrap()).unwrap();
        assert_eq!(bare.key("x/y").as_ref(), "x/y");
    }
}
