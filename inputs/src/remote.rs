//! Object-store URLs: the store for a URL, configured from the standard environment, and the
//! objects a URL names (one object, every `.parquet` object under a prefix, or a glob's
//! matches).
//!
//! Stores come from the `object_store` crate (the one DataFusion reads through), each
//! builder's `from_env`: `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_REGION`, `AWS_ALLOW_HTTP`, … for S3; `GOOGLE_*` for GCS; `AZURE_*` for Azure. No cloud
//! SDK is linked.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, ObjectStoreScheme};
use url::Url;

use crate::local::is_glob;
use crate::{InputError, Object};

/// Whether `arg` is a URL of a store (anything with a scheme but `file:`, which is a path).
pub(crate) fn is_url(arg: &str) -> bool {
    match arg.split_once("://") {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
                && !scheme.eq_ignore_ascii_case("file")
        }
        None => false,
    }
}

/// The objects `arg` names, sorted by key.
pub(crate) async fn expand(arg: &str) -> Result<Vec<Object>, InputError> {
    let url = Url::parse(arg).map_err(|e| InputError::BadUrl { url: arg.to_owned(), cause: Box::new(e) })?;
    let (store, path) = store_for(&url)?;
    let root = Url::parse(&url[..url::Position::BeforePath])
        .map_err(|e| InputError::BadUrl { url: arg.to_owned(), cause: Box::new(e) })?;
    let object = |path: ObjectPath, size: u64| Object { store: store.clone(), root: root.clone(), path, size };
    let store_err =
        |what, cause| InputError::Store { what, url: arg.to_owned(), cause: crate::error::StoreCause(cause) };
    let key = path.as_ref();

    if is_glob(key) {
        // List from the longest prefix without a wildcard, then match whole keys; `*` does not
        // cross a `/`, as in a shell.
        let literal = &key[..key.find(['*', '?', '[']).unwrap_or(key.len())];
        let prefix = literal.rfind('/').map(|i| &literal[..i]).unwrap_or("");
        let pattern =
            glob::Pattern::new(key).map_err(|cause| InputError::BadGlob { pattern: arg.to_owned(), cause })?;
        let options = glob::MatchOptions { require_literal_separator: true, ..Default::default() };
        let found = list(&store, prefix).await.map_err(|e| store_err("list", e))?;
        let v: Vec<Object> = found
            .into_iter()
            .filter(|(p, _)| pattern.matches_with(p.as_ref(), options))
            .map(|(p, size)| object(p, size))
            .collect();
        if v.is_empty() {
            return Err(InputError::NoMatch { pattern: arg.to_owned() });
        }
        return Ok(v);
    }

    if !key.is_empty() && !arg.ends_with('/') {
        match store.head(&path).await {
            Ok(meta) => return Ok(vec![object(meta.location, meta.size)]),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(store_err("read", e)),
        }
    }
    // A prefix: every `.parquet` object under it, at any depth.
    let found = list(&store, key).await.map_err(|e| store_err("list", e))?;
    let v: Vec<Object> =
        found.into_iter().filter(|(p, _)| p.as_ref().ends_with(".parquet")).map(|(p, size)| object(p, size)).collect();
    if v.is_empty() {
        return Err(InputError::NoObjects { url: arg.to_owned() });
    }
    Ok(v)
}

/// Every object under `prefix` (a directory-like prefix: `a/b` lists `a/b/…`), sorted.
async fn list(store: &Arc<dyn ObjectStore>, prefix: &str) -> Result<Vec<(ObjectPath, u64)>, object_store::Error> {
    let prefix = (!prefix.is_empty()).then(|| ObjectPath::from(prefix));
    let mut found: Vec<(ObjectPath, u64)> =
        store.list(prefix.as_ref()).map_ok(|m| (m.location, m.size)).try_collect().await?;
    found.sort();
    Ok(found)
}

/// The store `url` (`s3://bucket`, `gs://`, `az://`, `http(s)://host`, with or without a path)
/// is in, configured from the environment as for the inputs: a cluster's scheduler and
/// executors open the stores a plan names with it.
pub fn store_for_url(url: &Url) -> Result<Arc<dyn ObjectStore>, InputError> {
    store_for(url).map(|(store, _)| store)
}

/// The store `url` is in, configured from the environment, and the object path within it.
fn store_for(url: &Url) -> Result<(Arc<dyn ObjectStore>, ObjectPath), InputError> {
    let bad = |cause: Box<dyn std::error::Error + Send + Sync>| InputError::BadUrl { url: url.to_string(), cause };
    let (scheme, path) = ObjectStoreScheme::parse(url).map_err(|e| bad(Box::new(e)))?;
    let path = ObjectPath::parse(path).map_err(|e| bad(Box::new(e)))?;
    let store: Arc<dyn ObjectStore> = match scheme {
        ObjectStoreScheme::AmazonS3 => Arc::new(
            object_store::aws::AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .build()
                .map_err(|e| bad(Box::new(e)))?,
        ),
        ObjectStoreScheme::GoogleCloudStorage => Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(url.as_str())
                .build()
                .map_err(|e| bad(Box::new(e)))?,
        ),
        ObjectStoreScheme::MicrosoftAzure => Arc::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .build()
                .map_err(|e| bad(Box::new(e)))?,
        ),
        ObjectStoreScheme::Http => Arc::new(
            object_store::http::HttpBuilder::new()
                .with_url(&url[..url::Position::BeforePath])
                // The user named an http:// URL: plain HTTP is what they asked for.
                .with_client_options(ClientOptions::new().with_allow_http(url.scheme() == "http"))
                .build()
                .map_err(|e| bad(Box::new(e)))?,
        ),
        other => return Err(bad(format!("{other:?} URLs are not object stores").into())),
    };
    Ok((store, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_paths() {
        for url in ["s3://bucket/prefix/", "gs://b/x.parquet", "az://c/p", "https://host/x.parquet", "http://h:9/a"] {
            assert!(is_url(url), "{url}");
        }
        for path in ["capture.parquet", "/tmp/a.parquet", "file:///tmp/a.parquet", "dir/*.parquet", "://x"] {
            assert!(!is_url(path), "{path}");
        }
    }

    #[test]
    fn an_unknown_scheme_is_one_line_naming_the_url() {
        let url = Url::parse("ftp://host/a.parquet").unwrap();
        let e = store_for(&url).err().unwrap();
        assert!(e.to_string().starts_with("`ftp://host/a.parquet` is not a location"), "{e}");
    }
}
