//! A process's parsed table metadata and manifest lists, by location.
//!
//! Iceberg never rewrites a metadata or manifest-list file, and every one refold writes is
//! named with a fresh UUID, so a location names one content for the life of the process, in
//! any table and any handler. A warm container's next batch loads the metadata its own
//! commit wrote (inserted when the swap is won) and a commit reads the manifest list the
//! merge's lookup read moments before: on S3 that is two GETs saved per table per batch.
//!
//! Manifest lists are cached only as read, never as written: a list's entries inherit their
//! sequence numbers when read, so the writer's values are not what a reader sees.

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::{Arc, LazyLock, Mutex};

use iceberg::spec::{ManifestFile, TableMetadata};
use lru::LruCache;

use crate::error::Result;

/// Metadata versions kept: a batch's two tables (state and archive), each with room for the
/// version before, as a warm container needs no older one.
const MAX_CACHED_METADATA: usize = 4;
/// Manifest lists kept (each one entry per manifest, small): the two tables' current lists
/// and the ones a compaction or a replay reads beside them.
const MAX_CACHED_MANIFEST_LISTS: usize = 8;

/// Values by location, least recently used evicted first.
pub(crate) struct LocationCache<T> {
    inner: Mutex<LruCache<String, Arc<T>>>,
}

impl<T> LocationCache<T> {
    pub(crate) fn new(capacity: NonZeroUsize) -> Self {
        Self {
            inner: Mutex::new(LruCache::new(capacity)),
        }
    }

    pub(crate) fn get(&self, location: &str) -> Option<Arc<T>> {
        self.inner.lock().ok()?.get(location).cloned()
    }

    pub(crate) fn insert(&self, location: &str, value: Arc<T>) {
        if let Ok(mut c) = self.inner.lock() {
            c.put(location.to_string(), value);
        }
    }

    /// The cached value, or `load`'s (then cached). Two callers missing at once both load:
    /// the same immutable content, so either result is right.
    pub(crate) async fn get_or_load<F, Fut>(&self, location: &str, load: F) -> Result<Arc<T>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        if let Some(v) = self.get(location) {
            return Ok(v);
        }
        let v = Arc::new(load().await?);
        self.insert(location, v.clone());
        Ok(v)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().map(|c| c.len()).unwrap_or(0)
    }
}

fn capacity(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

static METADATA: LazyLock<LocationCache<TableMetadata>> =
    LazyLock::new(|| LocationCache::new(capacity(MAX_CACHED_METADATA)));

static MANIFEST_LISTS: LazyLock<LocationCache<Vec<ManifestFile>>> =
    LazyLock::new(|| LocationCache::new(capacity(MAX_CACHED_MANIFEST_LISTS)));

/// Parsed table metadata by metadata-file location.
pub(crate) fn metadata() -> &'static LocationCache<TableMetadata> {
    &METADATA
}

/// Parsed manifest lists by manifest-list location (as read, never as written).
pub(crate) fn manifest_lists() -> &'static LocationCache<Vec<ManifestFile>> {
    &MANIFEST_LISTS
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ok(v: u32) -> std::future::Ready<Result<u32>> {
        std::future::ready(Ok(v))
    }

    #[tokio::test]
    async fn a_location_is_loaded_once_and_the_least_recently_used_goes_first() {
        let c = LocationCache::new(capacity(2));
        assert_eq!(*c.get_or_load("a", || ok(1)).await.unwrap(), 1);
        // A hit does not call the loader (it would give 9).
        assert_eq!(*c.get_or_load("a", || ok(9)).await.unwrap(), 1);
        c.get_or_load("b", || ok(2)).await.unwrap();
        // "a" was used after "b" was inserted: "b" is the least recently used.
        assert_eq!(c.get("a").as_deref(), Some(&1));
        c.get_or_load("c", || ok(3)).await.unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("b"), None);
        assert_eq!(c.get("a").as_deref(), Some(&1));
        assert_eq!(c.get("c").as_deref(), Some(&3));
    }

    #[tokio::test]
    async fn a_failed_load_is_not_cached() {
        let c: LocationCache<u32> = LocationCache::new(capacity(2));
        let failed = c
            .get_or_load("a", || {
                std::future::ready(Err(crate::error::Error::new(
                    crate::error::ErrorKind::Io,
                    "gone",
                )))
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(c.len(), 0);
        assert_eq!(*c.get_or_load("a", || ok(4)).await.unwrap(), 4);
    }
}
