//! What a state table is configured with: where its catalog and files live, its name, how
//! the state is stored, who owns it, and the limits of one open table.

use std::collections::BTreeMap;
use std::sync::Arc;

use iceberg::{NamespaceIdent, TableIdent};

use super::CatalogSwap;
use super::schema::ColumnType;
use crate::error::{Error, ErrorKind, Result};

/// Where the table's catalog pointer lives: the SQL catalog refold connects itself, or a
/// catalog adapter built outside this crate (`refold-aws`'s Glue catalog) handed in whole.
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
    /// A [`CatalogSwap`] built by an adapter crate (the shared crate knows no cloud SDK), and
    /// the object store its tables live on.
    Adapter {
        swap: SharedCatalogSwap,
        storage: StorageConfig,
    },
}

/// A catalog adapter shared by every table opened on it; two are equal iff they are the
/// same adapter object.
#[derive(Debug, Clone)]
pub struct SharedCatalogSwap(pub Arc<dyn CatalogSwap>);

impl PartialEq for SharedCatalogSwap {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SharedCatalogSwap {}

impl CatalogConfig {
    /// The object store the catalog's tables live on.
    pub fn storage(&self) -> &StorageConfig {
        match self {
            CatalogConfig::Sql { storage, .. } | CatalogConfig::Adapter { storage, .. } => storage,
        }
    }

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableConfig {
    pub catalog: CatalogConfig,
    pub table: TableIdentity,
    /// Name of the key column (`key_field` of the fold), e.g. `order_id`.
    pub key_field: String,
    pub columns: StateColumns,
    /// Source topic and consumer group: they own the table (`refold.owner`) and name its
    /// offset map (`refold.offsets.<topic>/<group>`).
    pub topic: String,
    pub consumer_group: String,
    /// Extra table properties refold records when it creates or adopts the table (e.g. the
    /// engine's `refold.keying`); never rewritten afterwards.
    pub properties: BTreeMap<String, String>,
}

/// Limits of one [`StateTable`](super::StateTable); every unbounded thing has one. Units are in the names.
///
/// The commit-retry fields are defaults: a table's own Iceberg properties
/// (`commit.retry.num-retries`, `commit.retry.min-wait-ms`, `commit.retry.max-wait-ms`,
/// `commit.retry.total-timeout-ms`) win when set, as in every other Iceberg writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLimits {
    /// Attempts of one commit (first try included) before giving up with `CommitConflict`
    /// (`commit.retry.num-retries` + 1 when the table sets that).
    pub max_commit_attempts: u32,
    /// Backoff before retry n (n >= 1) is d + jitter in [0, d), d = min(cap, base * 2^(n-1))
    /// (`commit.retry.min-wait-ms` / `commit.retry.max-wait-ms` when the table sets them).
    pub commit_backoff_base_ms: u64,
    pub commit_backoff_cap_ms: u64,
    /// Wall time one commit may spend over all its attempts
    /// (`commit.retry.total-timeout-ms` when the table sets it).
    pub commit_total_timeout_ms: u64,
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
    /// Rows of data files indexed between merges, 12 bytes of memory each (see
    /// `table::file_index`); 0 turns the index off.
    pub max_indexed_rows: usize,
    /// Local disk (the temporary directory, Lambda's `/tmp`) the indexed rows may take.
    pub max_index_disk_bytes: u64,
    /// Positions of position-delete files kept parsed between merges, 8 bytes each (see
    /// `table::delete_cache`); 0 reads every delete file on every lookup.
    pub max_cached_delete_positions: usize,
    /// Ancestors walked back to find the offset map when neither the current snapshot nor
    /// the table properties carry it.
    pub max_offset_history_snapshots: usize,
}

impl Default for TableLimits {
    fn default() -> Self {
        Self {
            max_commit_attempts: 12,
            commit_backoff_base_ms: 10,
            commit_backoff_cap_ms: 2_000,
            // A merge runs inside one Lambda invocation: a minute of retrying is plenty
            // (Iceberg's own default, 30 min, outlives the invocation).
            commit_total_timeout_ms: 60_000,
            target_file_size_bytes: 128 * 1024 * 1024,
            row_group_rows: 32 * 1024,
            max_rows_per_batch: 100_000,
            max_keys_per_batch: 100_000,
            max_rows_per_compaction: 5_000_000,
            max_cached_manifests: 512,
            // 32 MB of memory at most; a 1 M-row partition of small states takes about
            // 200 MB of disk, within half of Lambda's default 512 MB of `/tmp`.
            max_indexed_rows: 2_000_000,
            max_index_disk_bytes: 256 << 20,
            // 8 MB: a hundred merges of 10,000 updates between two compactions.
            max_cached_delete_positions: 1_000_000,
            max_offset_history_snapshots: 1_000,
        }
    }
}
