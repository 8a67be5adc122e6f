//! The state table: one Iceberg row per (tenant, key) holding the folded state, merged batch by
//! batch with row-delta snapshots (new rows as data files, the rows they replace as position
//! deletes), exactly once in effect.
//!
//! `iceberg` 0.10 can only append, so the other commit kinds are built here on its public spec
//! writers (see `commit`). Module map, in the style of iceberg-rust (one concept a module):
//!
//! | module | concept |
//! |---|---|
//! | `config` | [`TableConfig`] and its parts ([`CatalogConfig`], [`TableIdentity`], [`StateColumns`]), [`TableLimits`] |
//! | [`schema`] | the table's schema, partition spec (identity of `source_partition`), sort order |
//! | [`catalog`] | FileIO, table creation and the catalog pointer; [`CatalogSwap`]: the compare-and-set per catalog (SQL catalog schemas of iceberg-rust, PyIceberg and Java's JdbcCatalog V0/V1) |
//! | `owner` | the (topic, consumer group) that owns a table (`refold.owner`); adopting a table without one |
//! | `merge` | `StateTable::merge_batch`: the exactly-once merge of one partition's batch |
//! | `maintenance` | compaction (`replace`), checkpoint tags, snapshot expiry |
//! | `retry` | the one commit-retry loop ([`CommitRetry`]: Iceberg's `commit.retry.*` properties, [`TableLimits`] as defaults) |
//! | [`commit`] | the only writer of Iceberg metadata: row-delta, replace, tag, expiry and properties commits |
//! | [`files`] | the live data and delete files of a snapshot, pruned by partition |
//! | [`position_delete`] | writing and reading position-delete files |
//! | [`lookup`] | finding the live rows of a batch's keys (and full scans) |
//! | [`file_index`] | a warm container's index of data files: rows on local disk, identity hashes in memory |
//! | [`delete_cache`] | a warm container's parsed position-delete files |
//! | `metadata_cache` | a process's parsed table metadata and manifest lists, by location (both immutable) |
//! | `written_files` | the manifests and manifest lists a process wrote, as bytes: the storage under every FileIO refold builds |
//! | [`offsets`] | the consumer group's offset map: snapshot summaries and a table property |
//! | [`row`] | [`StateRow`] <-> Arrow, canonical JSON |
//! | [`writer`] | data files (Parquet) |
//! | [`reader`] | Parquet reading on any FileIO, with page indexes and row numbers |
//!
//! The merge protocol (`StateTable::merge_batch`):
//! 1. load the table (or take the base `StateTable::prefetch` loaded moments before); check
//!    its format version (2), schema and spec ids (those refold opened with); `c` =
//!    committed next offset of the batch's partition (-1: none; see [`offsets`]
//!    for where it is read from, and when refold refuses to guess);
//! 2. look up the live rows (and their file positions) of the batch's keys in that partition;
//! 3. call the fold (async: it may write dead letters before the commit) with `c` and those
//!    priors;
//! 4. write the new rows as a data file and the replaced rows' positions as a position-delete
//!    file; commit one snapshot whose summary carries the whole consumer group's offset map,
//!    and the same map as a table property in the same metadata update;
//! 5. on a lost compare-and-set, reload: if the partition's offset moved, or ANY file of the
//!    partition was added or removed (a compaction, a second writer), redo from 2; else
//!    re-base the same files onto the new snapshot and retry, as the `retry` policy allows.
//!
//! Assumption: a (tenant, key) lives in one source partition (Kafka's key hashing), so a
//! merge looks for priors in its own partition only. Repartitioning a topic needs a replay
//! into a new table.

use std::collections::BTreeMap;
use std::sync::Arc;

use iceberg::TableIdent;
use iceberg::io::FileIO;
use iceberg::spec::{FormatVersion, TableMetadata};

use crate::error::{Error, ErrorKind, Result};

pub mod as_of;
pub mod catalog;
pub mod commit;
mod config;
pub mod delete_cache;
pub mod expire;
pub mod file_index;
pub mod files;
pub mod history;
pub mod hooks;
pub mod lookup;
mod maintenance;
pub mod manifests;
mod merge;
pub(crate) mod metadata_cache;
pub mod offsets;
pub mod orphans;
mod owner;
pub mod position_delete;
pub mod reader;
pub(crate) mod retry;
pub mod row;
pub mod schema;
pub mod stats;
pub mod writer;
pub(crate) mod written_files;

pub use catalog::{CatalogSwap, SqlCatalogSwap, SwapRequest};
pub use config::{
    CatalogConfig, DEFAULT_CATALOG_NAME, SharedCatalogSwap, StateColumns, StorageConfig,
    TableConfig, TableIdentity, TableLimits,
};
pub use maintenance::{CHECKPOINT_TAG_PREFIX, CompactOutcome};
pub(crate) use merge::WRITER;
pub use merge::{FoldedBatch, MergeOutcome};
pub use owner::OWNER_PROPERTY;
pub use retry::CommitRetry;
pub use schema::ColumnType;

/// The only Iceberg format version refold writes: its manifests, manifest lists and snapshots
/// are v2 (v3 adds row lineage fields refold does not write).
pub const FORMAT_VERSION: FormatVersion = FormatVersion::V2;

/// One current row of the state table.
#[derive(Debug, Clone, PartialEq)]
pub struct StateRow {
    pub tenant_id: String,
    pub key: String,
    pub state: crate::fold::State,
    pub source_partition: i32,
    pub last_offset: i64,
    pub last_event_id: String,
    /// Microseconds since the Unix epoch (UTC).
    pub last_event_time_us: i64,
    pub events_folded: i64,
}

impl StateRow {
    pub fn identity(&self) -> (String, String) {
        (self.tenant_id.clone(), self.key.clone())
    }
}

/// A test hook: fail on purpose at a point of the commit path, as a crash would.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    /// After the data and delete files are written, before anything is committed.
    AfterFilesWritten,
}

/// A base `prefetch` loaded for a merge of `partition`.
#[derive(Debug)]
struct Prefetched {
    partition: i32,
    base: Loaded,
    at: std::time::Instant,
}

/// A prefetched base older than this is not used: the catalog pointer is read again. The
/// engine merges a few tens of ms after its prefetch; an older base is likelier stale, and
/// a stale one costs a whole lost attempt.
const MAX_PREFETCHED_BASE_AGE_MS: u64 = 1_000;

/// The loaded state of a table at one metadata version: the base a commit builds on.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub metadata: Arc<TableMetadata>,
    pub location: String,
}

/// An open state table. Cheap to share behind an `Arc`; every call reloads the catalog pointer.
pub struct StateTable {
    cfg: TableConfig,
    ident: TableIdent,
    file_io: FileIO,
    catalog: Arc<dyn CatalogSwap>,
    codec: row::RowCodec,
    /// The schema and partition spec the codec and the writers were built for.
    schema_id: i32,
    spec_id: i32,
    limits: TableLimits,
    manifests: files::ManifestCache,
    /// Data files' indexes, kept between merges (see `file_index`).
    file_index: file_index::FileIndexCache,
    /// Parsed position-delete files, kept between merges (see `delete_cache`).
    deletes: delete_cache::DeleteCache,
    fault: std::sync::Mutex<Option<FaultPoint>>,
    hooks: hooks::Hooks,
    /// The base `prefetch` loaded, for the merge that follows it (taken once).
    prefetched: std::sync::Mutex<Option<Prefetched>>,
    /// The table's properties as this handle opened it (before an adoption commit records
    /// the configured ones).
    properties_at_open: BTreeMap<String, String>,
}

impl std::fmt::Debug for StateTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateTable")
            .field("table", &self.cfg.table.to_string())
            .finish()
    }
}

impl StateTable {
    /// Opens the table, creating namespace and table (schema, spec, sort order, properties) if
    /// missing. An existing table must have the schema `cfg` describes and format version 2,
    /// and be owned by `cfg`'s (topic, consumer group) or by nobody (then refold adopts it);
    /// else `Config`.
    pub async fn open_or_create(cfg: TableConfig) -> Result<Self> {
        let what = format!("state table {}", cfg.table);
        Self::open_inner(cfg)
            .await
            .map_err(|e| e.with_context(what))
    }

    async fn open_inner(cfg: TableConfig) -> Result<Self> {
        let layout = schema::layout(&cfg.key_field, &cfg.columns)?;
        let ident = cfg.table.ident()?;
        let (catalog, file_io) = catalog::connect(&cfg.catalog).await?;
        let loaded = match catalog.current_location(&ident).await? {
            Some(loc) => catalog::read_metadata(&file_io, &loc).await?,
            None => {
                let props = owner::creation_properties(&cfg, &layout);
                catalog::create_table(catalog.as_ref(), &file_io, &ident, &layout, props).await?
            }
        };
        let md = &loaded.metadata;
        check_format(md, &ident)?;
        schema::check_compatible(md.current_schema(), &layout.schema)?;
        let codec = row::RowCodec::new(md.current_schema().clone(), &cfg.key_field, &cfg.columns)?;
        let limits = TableLimits::default();
        let table = Self {
            properties_at_open: md.properties().clone().into_iter().collect(),
            manifests: files::ManifestCache::new(limits.max_cached_manifests),
            file_index: file_index::FileIndexCache::new(
                limits.max_indexed_rows,
                limits.max_index_disk_bytes,
            ),
            deletes: delete_cache::DeleteCache::new(limits.max_cached_delete_positions),
            schema_id: md.current_schema_id(),
            spec_id: md.default_partition_spec_id(),
            cfg,
            ident,
            file_io,
            catalog,
            codec,
            limits,
            fault: std::sync::Mutex::new(None),
            hooks: hooks::Hooks::default(),
            prefetched: std::sync::Mutex::new(None),
        };
        table.claim(&loaded).await?;
        Ok(table)
    }

    /// Replaces the limits (see [`TableLimits`]).
    /// (rows, local disk bytes) of the data files this handle's lookups index now.
    pub fn index_usage(&self) -> (usize, u64) {
        self.file_index.usage()
    }

    /// (files, positions) of the position-delete files this handle keeps parsed now.
    pub fn delete_cache_usage(&self) -> (usize, usize) {
        self.deletes.usage()
    }

    #[must_use]
    pub fn with_limits(mut self, limits: TableLimits) -> Self {
        self.manifests = files::ManifestCache::new(limits.max_cached_manifests);
        self.file_index =
            file_index::FileIndexCache::new(limits.max_indexed_rows, limits.max_index_disk_bytes);
        self.deletes = delete_cache::DeleteCache::new(limits.max_cached_delete_positions);
        self.limits = limits;
        self
    }

    pub fn limits(&self) -> &TableLimits {
        &self.limits
    }

    pub fn config(&self) -> &TableConfig {
        &self.cfg
    }

    pub fn file_io(&self) -> &FileIO {
        &self.file_io
    }

    /// Arms a test fault for the next commit path that reaches it (then disarms).
    #[doc(hidden)]
    pub fn inject_fault(&self, point: FaultPoint) {
        if let Ok(mut f) = self.fault.lock() {
            *f = Some(point);
        }
    }

    fn take_fault(&self, point: FaultPoint) -> Result<()> {
        let hit = match self.fault.lock() {
            Ok(mut f) if *f == Some(point) => f.take().is_some(),
            _ => false,
        };
        if hit {
            return Err(Error::new(
                ErrorKind::Io,
                format!("injected fault at {point:?}"),
            ));
        }
        Ok(())
    }

    pub(crate) async fn load(&self) -> Result<Loaded> {
        catalog::load(self.catalog.as_ref(), &self.file_io, &self.ident).await
    }

    /// Reads what a merge of `partition` reads first (the catalog pointer, the metadata, its
    /// manifest list, the partition's manifests and position-delete files), so that a caller
    /// can overlap those round trips with other work. The next merge of `partition` starts
    /// from the base read here when it comes within `MAX_PREFETCHED_BASE_AGE_MS` (on Glue,
    /// one GetTable less): its commit is a compare-and-set on that base, so a base another
    /// writer moved past loses the swap and the retry reads the pointer again. The merge
    /// meets any error itself: one here is only logged.
    pub async fn prefetch(&self, partition: i32) {
        let warmed = async {
            let base = self.load().await?;
            if let Ok(mut slot) = self.prefetched.lock() {
                *slot = Some(Prefetched {
                    partition,
                    base: base.clone(),
                    at: std::time::Instant::now(),
                });
            }
            let io = &self.file_io;
            let live =
                files::live_files(io, &base.metadata, Some(partition), &self.manifests).await?;
            let data: std::collections::HashSet<&str> =
                live.data.iter().map(|f| f.file.file_path()).collect();
            position_delete::read_deleted(io, &live.deletes, &data, Some(&self.deletes)).await
        };
        if let Err(e) = warmed.await {
            tracing::debug!(table = %self.cfg.table, partition, error = %e, "prefetch failed");
        }
    }

    /// The base the last `prefetch` of `partition` loaded, if recent (taken: used once).
    fn take_prefetched(&self, partition: i32) -> Option<Loaded> {
        let p = self.prefetched.lock().ok()?.take()?;
        let fresh = p.at.elapsed() <= std::time::Duration::from_millis(MAX_PREFETCHED_BASE_AGE_MS);
        (p.partition == partition && fresh).then_some(p.base)
    }

    /// An iceberg-rust `Table` of the current metadata (for scans by other readers and tests).
    pub async fn iceberg_table(&self) -> Result<iceberg::table::Table> {
        iceberg_table(&self.file_io, &self.ident, self.load().await?)
    }

    /// The table's properties as loaded when this handle opened it: what refold recorded
    /// at creation, without another catalog round trip (see [`StateTable::properties`] for
    /// the current ones).
    pub fn properties_at_open(&self) -> &BTreeMap<String, String> {
        &self.properties_at_open
    }

    /// The current table properties (refold's `refold.*` ones and everyone else's).
    pub async fn properties(&self) -> Result<BTreeMap<String, String>> {
        let l = self.load().await?;
        Ok(l.metadata
            .properties()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn offsets_key(&self) -> String {
        offsets::key(&self.cfg.topic, &self.cfg.consumer_group)
    }

    /// This group's committed offsets in `md` (see [`offsets::read`] for where from).
    fn read_offsets(&self, md: &TableMetadata) -> Result<BTreeMap<i32, i64>> {
        offsets::read(
            md,
            &self.cfg.topic,
            &self.cfg.consumer_group,
            self.limits.max_offset_history_snapshots,
        )
        .map_err(|e| e.with_context(format!("committed offsets of {}", self.cfg.table)))
    }

    /// The next offset per source partition of this consumer group: an empty map for a table
    /// without snapshots; a `Config` error when the table has snapshots but nothing in it
    /// says where this group stands (see [`offsets::read`]).
    pub async fn committed_offsets(&self) -> Result<BTreeMap<i32, i64>> {
        let l = self.load().await?;
        self.read_offsets(&l.metadata)
    }

    /// A base a data commit may build on: format version 2 and the schema and partition spec
    /// this handle writes with. Checked on every attempt: another engine may change either
    /// between two attempts, and files written for the old ones must not be committed.
    fn check_base(&self, base: &Loaded) -> Result<()> {
        let md = &base.metadata;
        check_format(md, &self.ident)?;
        let (schema_id, spec_id) = (md.current_schema_id(), md.default_partition_spec_id());
        if (schema_id, spec_id) != (self.schema_id, self.spec_id) {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "table {} changed under refold: schema id {} -> {schema_id}, partition spec id \
                     {} -> {spec_id} (another engine evolved it); refold does not evolve tables: \
                     reopen it (the pipeline's columns must still match) or replay into a new table",
                    self.cfg.table, self.schema_id, self.spec_id
                ),
            ));
        }
        Ok(())
    }

    /// The current rows, optionally of one tenant and/or one key, sorted by (tenant, key).
    /// Cost: every live file of the table (pruned by key bounds when `key` is given).
    pub async fn current_rows(
        &self,
        tenant: Option<&str>,
        key: Option<&str>,
    ) -> Result<Vec<StateRow>> {
        let l = self.load().await?;
        let live = files::live_files(&self.file_io, &l.metadata, None, &self.manifests).await?;
        let mut rows = lookup::scan_rows(&self.file_io, &self.codec, &live, tenant, key).await?;
        rows.sort_by(|a, b| (&a.tenant_id, &a.key).cmp(&(&b.tenant_id, &b.key)));
        Ok(rows)
    }
}

/// An iceberg-rust `Table` of `loaded` (scans: iceberg-rust's planning and Arrow reader).
pub(crate) fn iceberg_table(
    io: &FileIO,
    ident: &TableIdent,
    loaded: Loaded,
) -> Result<iceberg::table::Table> {
    let runtime = iceberg::Runtime::try_current()
        .map_err(|e| Error::new(ErrorKind::Internal, "no tokio runtime").with_source(e))?;
    iceberg::table::Table::builder()
        .file_io(io.clone())
        .identifier(ident.clone())
        .metadata_location(loaded.location)
        .metadata(loaded.metadata)
        .runtime(runtime)
        .build()
        .map_err(|e| Error::new(ErrorKind::Internal, "iceberg table handle").with_source(e))
}

/// Refold reads and writes format version 2 only: a v1 table, or one another engine upgraded
/// to v3, would get manifests and snapshots of the wrong version.
pub(crate) fn check_format(md: &TableMetadata, ident: &TableIdent) -> Result<()> {
    if md.format_version() != FORMAT_VERSION {
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "table {ident} has Iceberg format {}; refold writes format {} \
                 only (another engine upgraded or created it): replay into a new table",
                md.format_version(),
                FORMAT_VERSION
            ),
        ));
    }
    Ok(())
}

/// Maps any error into refold's with a kind and what was being done.
pub(crate) trait ResultExt<T> {
    fn kind(self, kind: ErrorKind, what: impl FnOnce() -> String) -> Result<T>;
    fn io(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> ResultExt<T> for std::result::Result<T, E> {
    fn kind(self, kind: ErrorKind, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::new(kind, what()).with_source(e))
    }
    fn io(self, what: impl FnOnce() -> String) -> Result<T> {
        self.kind(ErrorKind::Io, what)
    }
}
