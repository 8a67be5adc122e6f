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

    /// The metadata a won commit inserts is what a reader parses from its file; the manifest
    /// list it wrote enters only when read (here by `prefetch`), as the file holds it.
    /// (The only test of this crate's unit tests that commits: no other evicts its entries.)
    #[tokio::test]
    async fn a_commit_caches_what_its_metadata_file_holds() {
        use crate::table::{
            CatalogConfig, FoldedBatch, StateColumns, StateRow, StateTable, TableConfig,
            TableIdentity,
        };
        let dir = tempfile::tempdir().unwrap();
        let cfg = TableConfig {
            catalog: CatalogConfig::embedded(dir.path()).unwrap(),
            table: TableIdentity::parse("domain.orders.current_state").unwrap(),
            key_field: "order_id".into(),
            columns: StateColumns::Json,
            topic: "domain.orders.events".into(),
            consumer_group: "order-projection-v1".into(),
            properties: Default::default(),
        };
        let t = StateTable::open_or_create(cfg).await.unwrap();
        let row = StateRow {
            tenant_id: "acme".into(),
            key: "o-1".into(),
            state: crate::fold::State::parse(r#"{"total":5}"#).unwrap(),
            source_partition: 0,
            last_offset: 7,
            last_event_id: "e-7".into(),
            last_event_time_us: 1_700_000_000_000_000,
            events_folded: 1,
        };
        let keys = [row.identity()];
        t.merge_batch(0, &keys, async |_, _| {
            Ok(FoldedBatch {
                rows: vec![row.clone()],
                next_offset: 8,
                extra_summary: Default::default(),
            })
        })
        .await
        .unwrap();

        let loc = t.catalog.current_location(&t.ident).await.unwrap().unwrap();
        let cached = metadata()
            .get(&loc)
            .expect("the commit's metadata is cached");
        let read = TableMetadata::read_from(&t.file_io, &loc).await.unwrap();
        assert_eq!(*cached, read);
        assert!(cached.current_snapshot().is_some());

        let snapshot = read.current_snapshot().unwrap();
        assert!(manifest_lists().get(snapshot.manifest_list()).is_none());
        t.prefetch(0).await;
        let listed = manifest_lists()
            .get(snapshot.manifest_list())
            .expect("prefetch read the manifest list");
        let bytes = t
            .file_io
            .new_input(snapshot.manifest_list())
            .unwrap()
            .read()
            .await
            .unwrap();
        let parsed =
            iceberg::spec::ManifestList::parse_with_version(&bytes, read.format_version()).unwrap();
        assert_eq!(listed.as_slice(), parsed.entries());
        assert_eq!(listed.len(), 1, "one data manifest: {listed:?}");
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
