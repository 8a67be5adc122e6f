//! The state table: one Iceberg row per (tenant, key) holding the folded state, merged batch by
//! batch with row-delta snapshots (new rows as data files, the rows they replace as position
//! deletes), exactly once in effect.
//!
//! `iceberg` 0.10 can only append, so the other commit kinds are built here on its public spec
//! writers (see `commit`). Module map, in the style of iceberg-rust (one concept a module):
//!
//! | module | concept |
//! |---|---|
//! | [`schema`] | the table's schema, partition spec (identity of `source_partition`), sort order |
//! | [`catalog`] | FileIO and the catalog pointer; [`CatalogSwap`]: the compare-and-set per catalog |
//! | [`commit`] | the only writer of Iceberg metadata: row-delta, replace and tag commits |
//! | [`files`] | the live data and delete files of a snapshot, pruned by partition |
//! | [`position_delete`] | writing and reading position-delete files |
//! | [`lookup`] | finding the live rows of a batch's keys (and full scans) |
//! | [`offsets`] | the consumer group's offset map in snapshot summaries |
//! | [`row`] | [`StateRow`] <-> Arrow, canonical JSON |
//! | [`writer`] | data files (Parquet) |
//! | [`reader`] | Parquet reading on any FileIO, with page indexes and row numbers |
//!
//! The merge protocol (`StateTable::merge_batch`):
//! 1. load the table; `c` = committed next offset of the batch's partition (-1: none);
//! 2. look up the live rows (and their file positions) of the batch's keys in that partition;
//! 3. call the pure fold with `c` and those priors;
//! 4. write the new rows as a data file and the replaced rows' positions as a position-delete
//!    file; commit one snapshot whose summary carries the whole consumer group's offset map;
//! 5. on a lost compare-and-set, reload: if the partition's offset moved, or a data file our
//!    deletes point at is no longer live (compaction), redo from 2; else re-base the same files
//!    onto the new snapshot and retry. At most `max_commit_attempts` attempts, jittered backoff.
//!
//! Assumption: a (tenant, key) lives in one source partition (Kafka's key hashing), so a
//! merge looks for priors in its own partition only. Repartitioning a topic needs a replay
//! into a new table.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iceberg::io::FileIO;
use iceberg::spec::{DataFile, Operation, TableMetadata};
use iceberg::{NamespaceIdent, TableIdent};

use crate::error::{Error, ErrorKind, Result};

pub mod catalog;
pub mod commit;
pub mod files;
pub mod lookup;
pub mod offsets;
pub mod position_delete;
pub mod reader;
pub mod row;
pub mod schema;
pub mod writer;

pub use catalog::{CatalogSwap, SqlCatalogSwap, SwapRequest};
pub use schema::ColumnType;

/// Where the table's catalog pointer lives. Shaped so Glue and REST slot in as variants with
/// their own [`CatalogSwap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogConfig {
    /// The SQL catalog (the JDBC/PyIceberg `SqlCatalog` schema) on SQLite or PostgreSQL.
    Sql {
        /// `sqlite:/abs/path/catalog.db` (created if missing) or `postgres://user@host:port/db`.
        uri: String,
        /// `file:///abs/dir` or `s3://bucket/prefix`: tables go under `<warehouse>/<ns...>/<name>`.
        warehouse: String,
        /// The catalog name in the `iceberg_tables` rows; refold uses `refold`.
        catalog_name: String,
        storage: StorageConfig,
    },
}

impl CatalogConfig {
    /// The embedded default: everything under one warehouse folder, the catalog in
    /// `<dir>/catalog.db`, readable by PyIceberg as
    /// `SqlCatalog("refold", uri="sqlite:///<dir>/catalog.db", warehouse="file://<dir>")`.
    pub fn embedded(dir: &std::path::Path) -> Result<Self> {
        let dir = std::path::absolute(dir).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("warehouse folder {}", dir.display()),
            )
            .with_source(e)
        })?;
        let d = dir.to_string_lossy().trim_end_matches('/').to_string();
        Ok(CatalogConfig::Sql {
            uri: format!("sqlite:{d}/catalog.db"),
            warehouse: format!("file://{d}"),
            catalog_name: DEFAULT_CATALOG_NAME.to_string(),
            storage: StorageConfig::default(),
        })
    }
}

/// The catalog name refold registers its tables under.
pub const DEFAULT_CATALOG_NAME: &str = "refold";

/// Object-store settings; all `None` means the local filesystem (or the AWS defaults for S3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageConfig {
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    /// Needed by local S3 servers (moto, MinIO).
    pub s3_path_style: bool,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
    pub s3_session_token: Option<String>,
}

/// Namespace and name of a table, e.g. `domain.orders` / `current_state`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableIdentity {
    pub namespace: Vec<String>,
    pub name: String,
}

impl TableIdentity {
    /// Parses `a.b.c` into namespace `[a, b]` and name `c`.
    pub fn parse(dotted: &str) -> Result<Self> {
        let mut parts: Vec<String> = dotted.split('.').map(str::to_string).collect();
        let name = parts.pop().unwrap_or_default();
        if name.is_empty() || parts.is_empty() || parts.iter().any(String::is_empty) {
            return Err(Error::new(
                ErrorKind::Config,
                format!("table `{dotted}` must be `namespace.name` (namespace may have dots)"),
            ));
        }
        Ok(Self {
            namespace: parts,
            name,
        })
    }

    pub(crate) fn ident(&self) -> Result<TableIdent> {
        let ns = NamespaceIdent::from_vec(self.namespace.clone())
            .map_err(|e| Error::new(ErrorKind::Config, "table namespace").with_source(e))?;
        Ok(TableIdent::new(ns, self.name.clone()))
    }
}

impl std::fmt::Display for TableIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.namespace.join("."), self.name)
    }
}

/// How the folded state is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateColumns {
    /// One required `state` string column holding canonical JSON (sorted keys, no spaces).
    Json,
    /// One optional column per declared field of the state type. A state field that is not
    /// declared is an error (never silently dropped); null and absent are the same.
    Typed(Vec<(String, ColumnType)>),
}

/// Everything needed to open (or create) one state table.
#[derive(Debug, Clone)]
pub struct TableConfig {
    pub catalog: CatalogConfig,
    pub table: TableIdentity,
    /// Name of the key column (`key_field` of the fold), e.g. `order_id`.
    pub key_field: String,
    pub columns: StateColumns,
    /// Source topic and consumer group: they name the offset map in snapshot summaries.
    pub topic: String,
    pub consumer_group: String,
}

/// Limits of one [`StateTable`]; every unbounded thing has one. Units are in the names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLimits {
    /// Attempts of one commit (first try included) before giving up with `CommitConflict`.
    pub max_commit_attempts: u32,
    /// Backoff before retry n (n >= 1) is uniform in [0, min(cap, base * 2^(n-1))].
    pub commit_backoff_base_ms: u64,
    pub commit_backoff_cap_ms: u64,
    /// Data files roll over after about this many bytes (Parquet, compressed).
    pub target_file_size_bytes: usize,
    /// Rows of one Parquet row group: the unit of key-bound pruning and of read memory.
    pub row_group_rows: usize,
    /// Rows one `merge_batch` may write (the fold's output).
    pub max_rows_per_batch: usize,
    /// Keys one `merge_batch` may look up.
    pub max_keys_per_batch: usize,
    /// Rows one `compact` of one partition may hold in memory.
    pub max_rows_per_compaction: usize,
    /// Manifests kept parsed in memory between calls (they are immutable files).
    pub max_cached_manifests: usize,
    /// Ancestors walked back to find the offset map when the current snapshot lacks it.
    pub max_offset_history_snapshots: usize,
}

impl Default for TableLimits {
    fn default() -> Self {
        Self {
            max_commit_attempts: 12,
            commit_backoff_base_ms: 10,
            commit_backoff_cap_ms: 2_000,
            target_file_size_bytes: 128 * 1024 * 1024,
            row_group_rows: 32 * 1024,
            max_rows_per_batch: 100_000,
            max_keys_per_batch: 100_000,
            max_rows_per_compaction: 5_000_000,
            max_cached_manifests: 512,
            max_offset_history_snapshots: 1_000,
        }
    }
}

/// One current row of the state table.
#[derive(Debug, Clone, PartialEq)]
pub struct StateRow {
    pub tenant_id: String,
    pub key: String,
    pub state: serde_json::Map<String, serde_json::Value>,
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

/// What the fold closure of `merge_batch` returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FoldedBatch {
    /// The new rows (one per changed (tenant, key) of the batch, all of its partition).
    pub rows: Vec<StateRow>,
    /// The new committed (next) offset of the partition: last applied offset + 1.
    pub next_offset: i64,
    /// Extra snapshot summary properties (refold's own keys win on a clash).
    pub extra_summary: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeOutcome {
    /// The committed snapshot; `None` if there was nothing to commit (already applied).
    pub snapshot_id: Option<i64>,
    /// Commit attempts made (1 = no conflict).
    pub attempts: u32,
    pub rows_written: usize,
    pub rows_deleted: usize,
    pub already_applied: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactOutcome {
    /// One snapshot per compacted partition.
    pub snapshot_ids: Vec<i64>,
    pub partitions_compacted: Vec<i32>,
    pub rows_kept: usize,
    pub data_files_removed: usize,
    pub delete_files_removed: usize,
    pub data_files_added: usize,
}

/// Prefix of the tags `tag_checkpoint` creates and prunes; other tags are left alone.
pub const CHECKPOINT_TAG_PREFIX: &str = "checkpoint-";

/// A test hook: fail on purpose at a point of the commit path, as a crash would.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    /// After the data and delete files are written, before anything is committed.
    AfterFilesWritten,
}

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
    limits: TableLimits,
    manifests: files::ManifestCache,
    fault: std::sync::Mutex<Option<FaultPoint>>,
}

impl std::fmt::Debug for StateTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateTable")
            .field("table", &self.cfg.table.to_string())
            .finish()
    }
}

impl StateTable {
    /// Opens the table, creating namespace and table (schema, spec, sort order) if missing.
    /// An existing table must have the schema `cfg` describes (else `Config`).
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
            None => catalog::create_table(&cfg.catalog, &ident, &layout).await?,
        };
        schema::check_compatible(loaded.metadata.current_schema(), &layout.schema)?;
        let codec = row::RowCodec::new(
            loaded.metadata.current_schema().clone(),
            &cfg.key_field,
            &cfg.columns,
        )?;
        let limits = TableLimits::default();
        Ok(Self {
            manifests: files::ManifestCache::new(limits.max_cached_manifests),
            cfg,
            ident,
            file_io,
            catalog,
            codec,
            limits,
            fault: std::sync::Mutex::new(None),
        })
    }

    /// Replaces the limits (see [`TableLimits`]).
    #[must_use]
    pub fn with_limits(mut self, limits: TableLimits) -> Self {
        self.manifests = files::ManifestCache::new(limits.max_cached_manifests);
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
        let loc = self
            .catalog
            .current_location(&self.ident)
            .await?
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Io,
                    format!("table {} vanished from the catalog", self.cfg.table),
                )
            })?;
        catalog::read_metadata(&self.file_io, &loc).await
    }

    /// An iceberg-rust `Table` of the current metadata (for scans by other readers and tests).
    pub async fn iceberg_table(&self) -> Result<iceberg::table::Table> {
        let l = self.load().await?;
        iceberg::table::Table::builder()
            .file_io(self.file_io.clone())
            .identifier(self.ident.clone())
            .metadata_location(l.location)
            .metadata(l.metadata)
            .runtime(
                iceberg::Runtime::try_current().map_err(|e| {
                    Error::new(ErrorKind::Internal, "no tokio runtime").with_source(e)
                })?,
            )
            .build()
            .map_err(|e| Error::new(ErrorKind::Internal, "iceberg table handle").with_source(e))
    }

    fn offsets_key(&self) -> String {
        offsets::summary_key(&self.cfg.topic, &self.cfg.consumer_group)
    }

    /// The next offset per source partition, from the newest snapshot that carries this
    /// consumer group's offset map (empty if none does).
    pub async fn committed_offsets(&self) -> Result<BTreeMap<i32, i64>> {
        let l = self.load().await?;
        offsets::read(
            &l.metadata,
            &self.offsets_key(),
            self.limits.max_offset_history_snapshots,
        )
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

    /// The exactly-once merge of one batch of ONE source partition; see the module docs.
    /// `keys` are the (tenant, key) pairs of the batch: their current rows are the priors the
    /// fold gets. The fold must be pure: it is called again after a conflict that invalidates
    /// its inputs.
    pub async fn merge_batch<F>(
        &self,
        partition: i32,
        keys: &[(String, String)],
        mut fold: F,
    ) -> Result<MergeOutcome>
    where
        F: FnMut(i64, &HashMap<(String, String), StateRow>) -> Result<FoldedBatch>,
    {
        let ctx = || format!("merge into {} partition {partition}", self.cfg.table);
        if partition < 0 {
            return Err(
                Error::new(ErrorKind::InvalidInput, "negative source partition")
                    .with_context(ctx()),
            );
        }
        if keys.len() > self.limits.max_keys_per_batch {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "{} keys exceed max_keys_per_batch {}",
                    keys.len(),
                    self.limits.max_keys_per_batch
                ),
            )
            .with_context(ctx()));
        }
        let key_set: HashSet<(String, String)> = keys.iter().cloned().collect();
        let summary_key = self.offsets_key();
        // The files of the current plan, valid while `planned_offset` is the committed offset and
        // every data file in `targets` is live.
        let mut plan: Option<MergePlan> = None;
        let mut attempts = 0u32;
        let mut last_conflict = String::new();
        let mut timings = MergeTimings::default();
        while attempts < self.limits.max_commit_attempts {
            if attempts > 0 {
                backoff(&self.limits, attempts).await;
            }
            attempts += 1;
            let t_load = Instant::now();
            let base = self.load().await.map_err(|e| e.with_context(ctx()))?;
            let offsets_now = offsets::read(
                &base.metadata,
                &summary_key,
                self.limits.max_offset_history_snapshots,
            )?;
            let committed = offsets_now.get(&partition).copied().unwrap_or(-1);
            let live = files::live_files(
                &self.file_io,
                &base.metadata,
                Some(partition),
                &self.manifests,
            )
            .await
            .map_err(|e| e.with_context(ctx()))?;

            let t_lookup = Instant::now();
            timings.load_ms = ms(t_load, t_lookup);
            let reuse = match &plan {
                Some(p) if p.committed == committed => {
                    let live_paths: HashSet<&str> =
                        live.data.iter().map(|f| f.file.file_path()).collect();
                    p.targets.iter().all(|t| live_paths.contains(t.as_str()))
                }
                _ => false,
            };
            if !reuse {
                if let Some(old) = plan.take() {
                    old.discard(&self.file_io).await;
                }
                let found = lookup::find_rows(&self.file_io, &self.codec, &live, &key_set)
                    .await
                    .map_err(|e| e.with_context(ctx()))?;
                let t_fold = Instant::now();
                timings.lookup_ms = ms(t_lookup, t_fold);
                let mut priors: HashMap<(String, String), StateRow> =
                    HashMap::with_capacity(found.len());
                let mut located: HashMap<(String, String), (String, i64)> =
                    HashMap::with_capacity(found.len());
                for (id, f) in found {
                    located.insert(id.clone(), (f.file_path, f.pos));
                    priors.insert(id, f.row);
                }
                let folded = fold(committed, &priors).map_err(|e| e.with_context(ctx()))?;
                let t_write = Instant::now();
                timings.fold_ms = ms(t_fold, t_write);
                let applied = check_folded(&folded, committed, partition, &key_set, &self.limits)
                    .map_err(|e| e.with_context(ctx()))?;
                if !applied {
                    return Ok(MergeOutcome {
                        snapshot_id: None,
                        attempts,
                        rows_written: 0,
                        rows_deleted: 0,
                        already_applied: true,
                    });
                }
                plan = Some(
                    MergePlan::write(self, &base, partition, committed, folded, &located)
                        .await
                        .map_err(|e| e.with_context(ctx()))?,
                );
                timings.write_ms = ms(t_write, Instant::now());
            }
            let Some(p) = plan.as_ref() else {
                return Err(
                    Error::new(ErrorKind::Internal, "merge plan missing").with_context(ctx())
                );
            };
            let t_commit = Instant::now();
            self.take_fault(FaultPoint::AfterFilesWritten)
                .map_err(|e| e.with_context(ctx()))?;

            // The whole group's offset map: the base's, this partition advanced.
            let mut new_offsets = offsets_now.clone();
            new_offsets.insert(partition, p.next_offset);
            offsets::assert_forward(&offsets_now, &new_offsets)
                .map_err(|e| e.with_context(ctx()))?;
            let mut summary: HashMap<String, String> =
                p.extra_summary.clone().into_iter().collect();
            summary.insert(summary_key.clone(), offsets::encode(&new_offsets));
            summary.insert("refold.source-partition".into(), partition.to_string());
            summary.insert(
                "refold.writer".into(),
                concat!("refold ", env!("CARGO_PKG_VERSION")).into(),
            );
            let op = if p.deletes.is_empty() {
                Operation::Append
            } else {
                Operation::Overwrite
            };
            let change = commit::SnapshotChange {
                operation: op,
                added_data: p.data.clone(),
                added_deletes: p.deletes.clone(),
                removed_paths: HashSet::new(),
                summary,
            };
            match commit::commit_snapshot(
                &self.file_io,
                self.catalog.as_ref(),
                &self.ident,
                &base,
                &change,
                &self.manifests,
            )
            .await
            .map_err(|e| e.with_context(ctx()))?
            {
                commit::CommitResult::Committed { snapshot_id } => {
                    timings.commit_ms = ms(t_commit, Instant::now());
                    tracing::debug!(table = %self.cfg.table, partition, attempts, ?timings, "merged");
                    return Ok(MergeOutcome {
                        snapshot_id: Some(snapshot_id),
                        attempts,
                        rows_written: p.rows_written,
                        rows_deleted: p.rows_deleted,
                        already_applied: false,
                    });
                }
                commit::CommitResult::Lost(why) => {
                    tracing::debug!(table = %self.cfg.table, partition, attempts, %why, "commit lost, retrying");
                    last_conflict = why;
                }
            }
        }
        if let Some(p) = plan.take() {
            p.discard(&self.file_io).await;
        }
        Err(Error::new(
            ErrorKind::CommitConflict,
            format!(
                "gave up after max_commit_attempts={} (last: {last_conflict})",
                self.limits.max_commit_attempts
            ),
        )
        .with_context(ctx()))
    }

    /// Rewrites the live rows of one partition (or of every partition that has delete files or
    /// more than one data file) into sorted files and drops its delete files: one `replace`
    /// snapshot per partition, carrying the offset map forward unchanged.
    pub async fn compact(&self, partition: Option<i32>) -> Result<CompactOutcome> {
        let ctx = || format!("compact {} partition {partition:?}", self.cfg.table);
        let base = self.load().await.map_err(|e| e.with_context(ctx()))?;
        let parts: Vec<i32> = match partition {
            Some(p) => vec![p],
            None => {
                let live =
                    files::live_files(&self.file_io, &base.metadata, None, &self.manifests).await?;
                live.partitions_needing_compaction()
            }
        };
        let mut out = CompactOutcome::default();
        for p in parts {
            self.compact_partition(p, &mut out)
                .await
                .map_err(|e| e.with_context(ctx()))?;
        }
        Ok(out)
    }

    async fn compact_partition(&self, partition: i32, out: &mut CompactOutcome) -> Result<()> {
        let mut plan: Option<(Vec<String>, Vec<DataFile>, usize)> = None; // (removed, added, rows)
        let mut attempts = 0u32;
        let mut last_conflict = String::new();
        while attempts < self.limits.max_commit_attempts {
            if attempts > 0 {
                backoff(&self.limits, attempts).await;
            }
            attempts += 1;
            let base = self.load().await?;
            let live = files::live_files(
                &self.file_io,
                &base.metadata,
                Some(partition),
                &self.manifests,
            )
            .await?;
            let mut now: Vec<String> = live.all_paths();
            now.sort();
            if live.data.len() <= 1 && live.deletes.is_empty() && plan.is_none() {
                return Ok(()); // already compact
            }
            let reuse = matches!(&plan, Some((removed, _, _)) if *removed == now);
            if !reuse {
                if let Some((_, added, _)) = plan.take() {
                    writer::delete_files_best_effort(
                        &self.file_io,
                        added.iter().map(|f| f.file_path().to_string()),
                    )
                    .await;
                }
                let total: u64 = live.data.iter().map(|f| f.file.record_count()).sum();
                if total as usize > self.limits.max_rows_per_compaction {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "{total} rows exceed max_rows_per_compaction {}",
                            self.limits.max_rows_per_compaction
                        ),
                    ));
                }
                let mut rows =
                    lookup::scan_rows(&self.file_io, &self.codec, &live, None, None).await?;
                rows.sort_by(|a, b| (&a.tenant_id, &a.key).cmp(&(&b.tenant_id, &b.key)));
                let n = rows.len();
                let added = if rows.is_empty() {
                    vec![]
                } else {
                    writer::write_rows(
                        &self.file_io,
                        &base.metadata,
                        &self.codec,
                        partition,
                        &rows,
                        &self.limits,
                    )
                    .await?
                };
                plan = Some((now.clone(), added, n));
            }
            let Some((removed, added, rows)) = plan.as_ref() else {
                return Err(Error::new(ErrorKind::Internal, "compaction plan missing"));
            };
            // Replace: same logical rows, so the offset map is carried forward unchanged.
            let mut summary = HashMap::new();
            let key = self.offsets_key();
            let offsets = offsets::read(
                &base.metadata,
                &key,
                self.limits.max_offset_history_snapshots,
            )?;
            if !offsets.is_empty() {
                summary.insert(key, offsets::encode(&offsets));
            }
            summary.insert("refold.compacted-partition".into(), partition.to_string());
            summary.insert(
                "refold.writer".into(),
                concat!("refold ", env!("CARGO_PKG_VERSION")).into(),
            );
            let change = commit::SnapshotChange {
                operation: Operation::Replace,
                added_data: added.clone(),
                added_deletes: vec![],
                removed_paths: removed.iter().cloned().collect(),
                summary,
            };
            match commit::commit_snapshot(
                &self.file_io,
                self.catalog.as_ref(),
                &self.ident,
                &base,
                &change,
                &self.manifests,
            )
            .await?
            {
                commit::CommitResult::Committed { snapshot_id } => {
                    out.snapshot_ids.push(snapshot_id);
                    out.partitions_compacted.push(partition);
                    out.rows_kept += rows;
                    out.data_files_removed += live.data.len();
                    out.delete_files_removed += live.deletes.len();
                    out.data_files_added += added.len();
                    return Ok(());
                }
                commit::CommitResult::Lost(why) => last_conflict = why,
            }
        }
        if let Some((_, added, _)) = plan.take() {
            writer::delete_files_best_effort(
                &self.file_io,
                added.iter().map(|f| f.file_path().to_string()),
            )
            .await;
        }
        Err(Error::new(
            ErrorKind::CommitConflict,
            format!(
                "gave up after max_commit_attempts={} (last: {last_conflict})",
                self.limits.max_commit_attempts
            ),
        ))
    }

    /// Tags the current snapshot `name` (which must start with [`CHECKPOINT_TAG_PREFIX`]) and
    /// removes the oldest checkpoint tags beyond `max_kept`. A name already tagged is kept as
    /// it is (a retried call is a no-op). Fails on an empty table (nothing to tag).
    pub async fn tag_checkpoint(&self, name: &str, max_kept: usize) -> Result<()> {
        let ctx = || format!("tag {} as {name}", self.cfg.table);
        if !name.starts_with(CHECKPOINT_TAG_PREFIX) || name.len() == CHECKPOINT_TAG_PREFIX.len() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("checkpoint tag names start with `{CHECKPOINT_TAG_PREFIX}`"),
            )
            .with_context(ctx()));
        }
        if max_kept == 0 {
            return Err(
                Error::new(ErrorKind::InvalidInput, "max_kept must be at least 1")
                    .with_context(ctx()),
            );
        }
        let mut attempts = 0u32;
        let mut last_conflict = String::new();
        while attempts < self.limits.max_commit_attempts {
            if attempts > 0 {
                backoff(&self.limits, attempts).await;
            }
            attempts += 1;
            let base = self.load().await.map_err(|e| e.with_context(ctx()))?;
            match commit::commit_checkpoint_tag(
                &self.file_io,
                self.catalog.as_ref(),
                &self.ident,
                &base,
                name,
                max_kept,
            )
            .await
            .map_err(|e| e.with_context(ctx()))?
            {
                commit::CommitResult::Committed { .. } => return Ok(()),
                commit::CommitResult::Lost(why) => last_conflict = why,
            }
        }
        Err(Error::new(
            ErrorKind::CommitConflict,
            format!(
                "gave up after max_commit_attempts={} (last: {last_conflict})",
                self.limits.max_commit_attempts
            ),
        )
        .with_context(ctx()))
    }

    /// Drops snapshots from the table metadata that are neither among the newest
    /// `keep_last` (>= 1) of main nor tagged (checkpoints) — so the metadata every merge
    /// reads stays small. Metadata only: data and manifest files stay (no orphan sweep yet).
    /// Returns how many snapshots were removed.
    pub async fn expire_snapshots(&self, keep_last: usize) -> Result<usize> {
        let ctx = || format!("expire snapshots of {}", self.cfg.table);
        let mut attempts = 0u32;
        let mut last_conflict = String::new();
        while attempts < self.limits.max_commit_attempts {
            if attempts > 0 {
                backoff(&self.limits, attempts).await;
            }
            attempts += 1;
            let base = self.load().await.map_err(|e| e.with_context(ctx()))?;
            match commit::commit_expire_snapshots(
                &self.file_io,
                self.catalog.as_ref(),
                &self.ident,
                &base,
                keep_last,
            )
            .await
            .map_err(|e| e.with_context(ctx()))?
            {
                (commit::CommitResult::Committed { .. }, n) => return Ok(n),
                (commit::CommitResult::Lost(why), _) => last_conflict = why,
            }
        }
        Err(Error::new(
            ErrorKind::CommitConflict,
            format!(
                "gave up after max_commit_attempts={} (last: {last_conflict})",
                self.limits.max_commit_attempts
            ),
        )
        .with_context(ctx()))
    }

    /// The checkpoint tags, oldest first: (name, snapshot id, snapshot time in ms).
    pub async fn checkpoint_tags(&self) -> Result<Vec<(String, i64, i64)>> {
        let l = self.load().await?;
        commit::checkpoint_tags(&l.metadata)
    }
}

/// Checks the fold's output; `Ok(false)` means already applied (nothing to commit).
fn check_folded(
    folded: &FoldedBatch,
    committed: i64,
    partition: i32,
    keys: &HashSet<(String, String)>,
    limits: &TableLimits,
) -> Result<bool> {
    if folded.next_offset <= committed {
        if folded.rows.is_empty() {
            return Ok(false);
        }
        return Err(Error::new(
            ErrorKind::Internal,
            format!(
                "fold returned {} rows but next offset {} does not advance committed offset {committed}",
                folded.rows.len(),
                folded.next_offset
            ),
        ));
    }
    if folded.next_offset < 0 {
        return Err(Error::new(
            ErrorKind::Internal,
            "fold returned a negative next offset",
        ));
    }
    if folded.rows.len() > limits.max_rows_per_batch {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{} rows exceed max_rows_per_batch {}",
                folded.rows.len(),
                limits.max_rows_per_batch
            ),
        ));
    }
    let mut seen = HashSet::with_capacity(folded.rows.len());
    for r in &folded.rows {
        let id = (r.tenant_id.clone(), r.key.clone());
        if r.source_partition != partition {
            return Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "row {id:?} has source_partition {} in a batch of partition {partition}",
                    r.source_partition
                ),
            ));
        }
        if !keys.contains(&id) {
            return Err(Error::new(
                ErrorKind::Internal,
                format!("fold returned a row for {id:?}, not a key of the batch"),
            ));
        }
        if !seen.insert(id) {
            return Err(Error::new(
                ErrorKind::Internal,
                format!("fold returned two rows for {:?}", r.identity()),
            ));
        }
    }
    Ok(true)
}

/// Where the time of the last attempt of a merge went (logged at debug level).
#[derive(Debug, Default, Clone, Copy)]
#[allow(dead_code)] // read through Debug
struct MergeTimings {
    load_ms: f64,
    lookup_ms: f64,
    fold_ms: f64,
    write_ms: f64,
    commit_ms: f64,
}

fn ms(a: Instant, b: Instant) -> f64 {
    (b - a).as_secs_f64() * 1e3
}

/// Jittered exponential backoff before retry `attempt` (>= 1).
async fn backoff(limits: &TableLimits, attempt: u32) {
    let exp = limits
        .commit_backoff_base_ms
        .saturating_mul(1u64 << (attempt - 1).min(20));
    let cap = exp.min(limits.commit_backoff_cap_ms).max(1);
    let jitter = (uuid::Uuid::new_v4().as_u128() % u128::from(cap + 1)) as u64;
    tokio::time::sleep(Duration::from_millis(jitter)).await;
}

/// The files written for one fold result, valid while the partition's committed offset is
/// `committed` and the data files in `targets` are live.
struct MergePlan {
    committed: i64,
    next_offset: i64,
    extra_summary: BTreeMap<String, String>,
    data: Vec<DataFile>,
    deletes: Vec<DataFile>,
    targets: HashSet<String>,
    rows_written: usize,
    rows_deleted: usize,
}

impl MergePlan {
    async fn write(
        t: &StateTable,
        base: &Loaded,
        partition: i32,
        committed: i64,
        folded: FoldedBatch,
        located: &HashMap<(String, String), (String, i64)>,
    ) -> Result<Self> {
        let started = Instant::now();
        let mut rows = folded.rows;
        rows.sort_by(|a, b| (&a.tenant_id, &a.key).cmp(&(&b.tenant_id, &b.key)));
        // The live versions of the rows being replaced.
        let mut positions: Vec<(String, i64)> = rows
            .iter()
            .filter_map(|r| located.get(&(r.tenant_id.clone(), r.key.clone())))
            .cloned()
            .collect();
        positions.sort();
        let targets: HashSet<String> = positions.iter().map(|(p, _)| p.clone()).collect();
        let data = if rows.is_empty() {
            vec![]
        } else {
            writer::write_rows(
                &t.file_io,
                &base.metadata,
                &t.codec,
                partition,
                &rows,
                &t.limits,
            )
            .await?
        };
        let deletes = if positions.is_empty() {
            vec![]
        } else {
            position_delete::write(&t.file_io, &base.metadata, partition, &positions, &t.limits)
                .await?
        };
        tracing::debug!(
            rows = rows.len(),
            deletes = positions.len(),
            ms = started.elapsed().as_millis() as u64,
            "merge files written"
        );
        Ok(Self {
            committed,
            next_offset: folded.next_offset,
            extra_summary: folded.extra_summary,
            data,
            deletes,
            targets,
            rows_written: rows.len(),
            rows_deleted: positions.len(),
        })
    }

    /// Removes the files of an abandoned plan (never committed, so nothing references them).
    async fn discard(self, io: &FileIO) {
        let paths = self
            .data
            .iter()
            .chain(self.deletes.iter())
            .map(|f| f.file_path().to_string());
        writer::delete_files_best_effort(io, paths).await;
    }
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
