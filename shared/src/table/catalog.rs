//! The catalog pointer of a table and the FileIO its files live on.
//!
//! Iceberg's atomicity is one compare-and-set of "current metadata file" in the catalog.
//! [`CatalogSwap`] is that operation and nothing else; `commit` builds the new metadata and
//! calls it. Per catalog:
//! - SQL catalog (SQLite, PostgreSQL; the JDBC/PyIceberg `iceberg_tables` schema):
//!   `UPDATE iceberg_tables SET metadata_location = new ... WHERE ... AND metadata_location = base`,
//!   won iff one row changed ([`SqlCatalogSwap`]).
//! - Glue (`refold-aws`'s `GlueCatalogSwap`, handed in as [`CatalogConfig::Adapter`]):
//!   `GetTable` gives `metadata_location` and `VersionId`; `UpdateTable` with that
//!   `VersionId` is the compare-and-set.
//! - REST (to add): `POST /v1/{prefix}/namespaces/{ns}/tables/{t}` with the request's
//!   `requirements` (main at the base snapshot, table uuid) and `updates`; 409 = lost.
//!   [`SwapRequest`] carries both so the REST adapter needs nothing else.
//!
//! SQL catalog databases come in two schemas: `iceberg_tables` with an `iceberg_type` column
//! (Java JdbcCatalog V1, PyIceberg 0.12, iceberg-rust) or without (Java JdbcCatalog V0).
//! [`SqlCatalogSwap`] finds out which when it connects and reads, creates and swaps rows the
//! way that schema has them. It creates tables itself (metadata file
//! `<table>/metadata/00000-<uuid>.metadata.json`, then the row), as the other SQL-catalog
//! clients do; only the catalog tables of a fresh database come from iceberg-rust's
//! `SqlCatalog` (the V1 schema).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use iceberg::io::{FileIO, FileIOBuilder};
use iceberg::spec::{TableMetadata, TableMetadataBuilder};
use iceberg::{
    CatalogBuilder, MetadataLocation, TableCreation, TableIdent, TableRequirement, TableUpdate,
};
use iceberg_catalog_sql::{
    SQL_CATALOG_PROP_BIND_STYLE, SQL_CATALOG_PROP_URI, SQL_CATALOG_PROP_WAREHOUSE,
    SqlCatalogBuilder,
};
use iceberg_storage_opendal::OpenDalResolvingStorageFactory;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

use super::schema::TableLayout;
use super::{CatalogConfig, Loaded, ResultExt, StorageConfig};
use crate::error::{Error, ErrorKind, Result};

/// Connections to the SQL catalog database refold holds per open table.
pub const SQL_MAX_CONNECTIONS: u32 = 4;

/// One compare-and-set of a table's metadata pointer.
#[derive(Debug)]
pub struct SwapRequest<'a> {
    pub ident: &'a TableIdent,
    /// The metadata file the new one was built on (what the catalog must still point at).
    pub base_location: &'a str,
    /// The new metadata file, already written.
    pub new_location: &'a str,
    pub new_metadata: &'a TableMetadata,
    /// For REST catalogs: what must hold, and the changes, as the Iceberg REST spec has them.
    pub requirements: Vec<TableRequirement>,
    pub updates: Vec<TableUpdate>,
}

/// The catalog operations a state table needs: read the pointer, swap it atomically.
#[async_trait]
pub trait CatalogSwap: Send + Sync + std::fmt::Debug {
    /// The current metadata location of `ident`, `None` if the table does not exist.
    async fn current_location(&self, ident: &TableIdent) -> Result<Option<String>>;
    /// Points `ident` at `new_location` iff it still points at `base_location`.
    /// `Ok(false)`: lost to a concurrent writer (nothing changed).
    async fn swap(&self, req: SwapRequest<'_>) -> Result<bool>;
    /// Where a new table `ident` goes: the namespace's `location` property if it has one,
    /// else `<warehouse>/<ns...>`; then `/<name>`.
    async fn new_table_location(&self, ident: &TableIdent) -> Result<String>;
    /// Registers a new table (and its namespace if missing) pointing at `metadata_location`.
    /// `Ok(false)`: the table exists already (created concurrently); nothing changed.
    async fn register(&self, ident: &TableIdent, metadata_location: &str) -> Result<bool>;
}

/// The SQL catalog's compare-and-set, on SQLite or PostgreSQL.
#[derive(Debug)]
pub struct SqlCatalogSwap {
    pool: AnyPool,
    catalog_name: String,
    postgres: bool,
    /// `file:///...` or `s3://...`, no trailing `/`.
    warehouse: String,
    /// Whether `iceberg_tables` has the `iceberg_type` column (V1 schema); V0 has not.
    iceberg_type: bool,
}

impl SqlCatalogSwap {
    fn sql(&self, q: &str) -> String {
        if !self.postgres {
            return q.to_string();
        }
        let mut n = 0;
        q.chars()
            .map(|c| {
                if c == '?' {
                    n += 1;
                    format!("${n}")
                } else {
                    c.to_string()
                }
            })
            .collect()
    }
}

impl SqlCatalogSwap {
    /// Fails if the catalog tables do not exist.
    async fn probe(&self) -> Result<()> {
        sqlx::query("SELECT 1 FROM iceberg_tables WHERE 1 = 0")
            .execute(&self.pool)
            .await
            .io(|| "probe catalog tables".into())
            .map(|_| ())
    }

    /// Whether `iceberg_tables` has `iceberg_type` (the V1 schema).
    async fn has_iceberg_type(&self) -> bool {
        sqlx::query("SELECT iceberg_type FROM iceberg_tables WHERE 1 = 0")
            .execute(&self.pool)
            .await
            .is_ok()
    }

    /// Only rows of tables (V1 also holds views); V0 holds tables only.
    fn table_filter(&self) -> &'static str {
        if self.iceberg_type {
            " AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL)"
        } else {
            ""
        }
    }

    async fn namespace_property(&self, ns: &str, key: &str) -> Result<Option<String>> {
        let q = self.sql(
            "SELECT property_value FROM iceberg_namespace_properties WHERE catalog_name = ? \
             AND namespace = ? AND property_key = ?",
        );
        let row: Option<(Option<String>,)> = sqlx::query_as(&q)
            .bind(&self.catalog_name)
            .bind(ns)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .io(|| format!("read property {key} of namespace {ns}"))?;
        Ok(row.and_then(|r| r.0))
    }

    /// Creates the namespace's `exists` row (as Java, PyIceberg and iceberg-rust do) unless
    /// the namespace has a row already; a concurrent creator is fine.
    async fn ensure_namespace(&self, ns: &str) -> Result<()> {
        let q = self.sql(
            "SELECT 1 FROM iceberg_namespace_properties WHERE catalog_name = ? AND namespace = ?",
        );
        let any = |q: String| async move {
            sqlx::query(&q)
                .bind(&self.catalog_name)
                .bind(ns)
                .fetch_optional(&self.pool)
                .await
                .io(|| format!("check namespace {ns}"))
                .map(|r| r.is_some())
        };
        if any(q.clone()).await? {
            return Ok(());
        }
        let ins = self.sql(
            "INSERT INTO iceberg_namespace_properties (catalog_name, namespace, property_key, \
             property_value) VALUES (?, ?, 'exists', 'true')",
        );
        let res = sqlx::query(&ins)
            .bind(&self.catalog_name)
            .bind(ns)
            .execute(&self.pool)
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(_) if any(q).await? => Ok(()),
            Err(e) => {
                Err(Error::new(ErrorKind::Io, format!("create namespace {ns}")).with_source(e))
            }
        }
    }
}

#[async_trait]
impl CatalogSwap for SqlCatalogSwap {
    async fn current_location(&self, ident: &TableIdent) -> Result<Option<String>> {
        let q = self.sql(&format!(
            "SELECT metadata_location FROM iceberg_tables WHERE catalog_name = ? AND table_namespace = ? \
             AND table_name = ?{}",
            self.table_filter()
        ));
        let row: Option<(Option<String>,)> = sqlx::query_as(&q)
            .bind(&self.catalog_name)
            .bind(ident.namespace().join("."))
            .bind(ident.name())
            .fetch_optional(&self.pool)
            .await
            .io(|| format!("read catalog pointer of {ident}"))?;
        Ok(row.and_then(|r| r.0))
    }

    async fn swap(&self, req: SwapRequest<'_>) -> Result<bool> {
        let q = self.sql(
            "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ? \
             WHERE catalog_name = ? AND table_namespace = ? AND table_name = ? AND metadata_location = ?",
        );
        let res = sqlx::query(&q)
            .bind(req.new_location)
            .bind(req.base_location)
            .bind(&self.catalog_name)
            .bind(req.ident.namespace().join("."))
            .bind(req.ident.name())
            .bind(req.base_location)
            .execute(&self.pool)
            .await
            .io(|| format!("swap catalog pointer of {}", req.ident))?;
        match res.rows_affected() {
            0 => Ok(false),
            1 => Ok(true),
            n => Err(Error::new(
                ErrorKind::Internal,
                format!("catalog swap changed {n} rows of {}", req.ident),
            )),
        }
    }

    async fn new_table_location(&self, ident: &TableIdent) -> Result<String> {
        let ns = ident.namespace().join(".");
        let base = match self.namespace_property(&ns, "location").await? {
            Some(l) => l.trim_end_matches('/').to_string(),
            None => format!("{}/{}", self.warehouse, ident.namespace().join("/")),
        };
        Ok(format!("{base}/{}", ident.name()))
    }

    async fn register(&self, ident: &TableIdent, metadata_location: &str) -> Result<bool> {
        let ns = ident.namespace().join(".");
        self.ensure_namespace(&ns).await?;
        let q = if self.iceberg_type {
            "INSERT INTO iceberg_tables (catalog_name, table_namespace, table_name, \
             metadata_location, previous_metadata_location, iceberg_type) VALUES (?, ?, ?, ?, NULL, 'TABLE')"
        } else {
            "INSERT INTO iceberg_tables (catalog_name, table_namespace, table_name, \
             metadata_location, previous_metadata_location) VALUES (?, ?, ?, ?, NULL)"
        };
        let res = sqlx::query(&self.sql(q))
            .bind(&self.catalog_name)
            .bind(&ns)
            .bind(ident.name())
            .bind(metadata_location)
            .execute(&self.pool)
            .await;
        match res {
            Ok(_) => Ok(true),
            // The primary key (catalog, namespace, name) refused a second row.
            Err(_) if self.current_location(ident).await?.is_some() => Ok(false),
            Err(e) => {
                Err(Error::new(ErrorKind::Io, format!("register table {ident}")).with_source(e))
            }
        }
    }
}

fn storage_props(s: &StorageConfig) -> HashMap<String, String> {
    let mut p = HashMap::new();
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            p.insert(k.to_string(), v.clone());
        }
    };
    put(iceberg::io::S3_ENDPOINT, &s.s3_endpoint);
    put(iceberg::io::S3_REGION, &s.s3_region);
    put(iceberg::io::S3_ACCESS_KEY_ID, &s.s3_access_key_id);
    put(iceberg::io::S3_SECRET_ACCESS_KEY, &s.s3_secret_access_key);
    put(iceberg::io::S3_SESSION_TOKEN, &s.s3_session_token);
    if s.s3_path_style {
        p.insert(
            iceberg::io::S3_PATH_STYLE_ACCESS.to_string(),
            "true".to_string(),
        );
    }
    p
}

/// A FileIO for `storage` (local files, S3): the one object-store client stack of refold,
/// keeping the manifests it writes for the reads that follow (`written_files`).
pub fn file_io(storage: &StorageConfig) -> FileIO {
    FileIOBuilder::new(Arc::new(
        super::written_files::CachingStorageFactory::default(),
    ))
    .with_props(storage_props(storage))
    .build()
}

fn is_postgres(uri: &str) -> bool {
    uri.starts_with("postgres:") || uri.starts_with("postgresql:")
}

/// sqlx needs `mode=rwc` to create a missing SQLite file; creates its folder too.
fn sqlx_uri(uri: &str) -> Result<String> {
    if let Some(rest) = uri.strip_prefix("sqlite:") {
        let path = rest.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or(path);
        if let Some(dir) = std::path::Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .io(|| format!("create catalog folder {}", dir.display()))?;
        }
        if !uri.contains("mode=") {
            let sep = if uri.contains('?') { '&' } else { '?' };
            return Ok(format!("{uri}{sep}mode=rwc"));
        }
    }
    Ok(uri.to_string())
}

/// Opens the catalog's compare-and-set and the FileIO for its warehouse.
pub(crate) async fn connect(cfg: &CatalogConfig) -> Result<(Arc<dyn CatalogSwap>, FileIO)> {
    match cfg {
        CatalogConfig::Sql {
            uri,
            warehouse,
            catalog_name,
            storage,
        } => {
            let file_io = file_io(storage);
            if let Some(dir) = warehouse.strip_prefix("file://") {
                std::fs::create_dir_all(dir).io(|| format!("create warehouse folder {dir}"))?;
            }
            let uri = sqlx_uri(uri)?;
            sqlx::any::install_default_drivers();
            let pool = AnyPoolOptions::new()
                .max_connections(SQL_MAX_CONNECTIONS)
                .connect(&uri)
                .await
                .io(|| format!("connect to catalog {}", redact(&uri)))?;
            let mut swap = SqlCatalogSwap {
                pool,
                catalog_name: catalog_name.clone(),
                postgres: is_postgres(&uri),
                warehouse: warehouse.trim_end_matches('/').to_string(),
                iceberg_type: true,
            };
            // A fresh database has no catalog tables yet: iceberg-rust's SqlCatalog creates them
            // (iceberg_tables, iceberg_namespace_properties) as other SQL-catalog clients expect.
            if swap.probe().await.is_err() {
                sql_catalog(cfg).await?;
            }
            swap.iceberg_type = swap.has_iceberg_type().await;
            Ok((Arc::new(swap), file_io))
        }
        CatalogConfig::Adapter { swap, storage } => Ok((Arc::clone(&swap.0), file_io(storage))),
    }
}

async fn sql_catalog(cfg: &CatalogConfig) -> Result<iceberg_catalog_sql::SqlCatalog> {
    let CatalogConfig::Sql {
        uri,
        warehouse,
        catalog_name,
        storage,
    } = cfg
    else {
        return Err(Error::new(ErrorKind::Internal, "not a SQL catalog"));
    };
    let mut props = storage_props(storage);
    props.insert(SQL_CATALOG_PROP_URI.to_string(), sqlx_uri(uri)?);
    props.insert(
        SQL_CATALOG_PROP_WAREHOUSE.to_string(),
        warehouse.trim_end_matches('/').to_string(),
    );
    let style = if is_postgres(uri) {
        "DollarNumeric"
    } else {
        "QMark"
    };
    props.insert(SQL_CATALOG_PROP_BIND_STYLE.to_string(), style.to_string());
    props.insert("pool.max-connections".to_string(), "2".to_string());
    SqlCatalogBuilder::default()
        .with_storage_factory(Arc::new(OpenDalResolvingStorageFactory::new()))
        .load(catalog_name, props)
        .await
        .io(|| format!("open SQL catalog {catalog_name} at {}", redact(uri)))
}

/// Hides a password in a connection string.
fn redact(uri: &str) -> String {
    match (uri.find("://"), uri.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &uri[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{user}:***@{}", &uri[..s], &uri[at + 1..])
        }
        _ => uri.to_string(),
    }
}

/// The table's current metadata, through the catalog pointer (a table gone from the
/// catalog is an `Io` error naming it).
pub(crate) async fn load(
    catalog: &dyn CatalogSwap,
    io: &FileIO,
    ident: &TableIdent,
) -> Result<Loaded> {
    let loc = catalog.current_location(ident).await?.ok_or_else(|| {
        Error::new(
            ErrorKind::Io,
            format!("table {ident} vanished from the catalog"),
        )
    })?;
    read_metadata(io, &loc).await
}

/// The metadata at `location` (immutable: read once per process, see `metadata_cache`).
pub(crate) async fn read_metadata(io: &FileIO, location: &str) -> Result<Loaded> {
    let metadata = super::metadata_cache::metadata()
        .get_or_load(location, || async {
            TableMetadata::read_from(io, location)
                .await
                .io(|| format!("read table metadata {location}"))
        })
        .await?;
    Ok(Loaded {
        metadata,
        location: location.to_string(),
    })
}

/// Creates the table (and its namespace) with `properties`, tolerating a concurrent creator,
/// and loads it.
pub(crate) async fn create_table(
    catalog: &dyn CatalogSwap,
    io: &FileIO,
    ident: &TableIdent,
    layout: &TableLayout,
    properties: HashMap<String, String>,
) -> Result<Loaded> {
    let location = catalog.new_table_location(ident).await?;
    let creation = TableCreation::builder()
        .name(ident.name().to_string())
        .location(location.clone())
        .schema(layout.schema.clone())
        .partition_spec(layout.spec.clone())
        .sort_order(layout.sort_order.clone())
        .properties(properties)
        .build();
    let md = TableMetadataBuilder::from_table_creation(creation)
        .and_then(|b| b.build())
        .kind(ErrorKind::Internal, || {
            format!("metadata of new table {ident}")
        })?
        .metadata;
    let new_location = MetadataLocation::new_with_metadata(location, &md);
    md.write_to(io, &new_location)
        .await
        .io(|| format!("write {new_location}"))?;
    let md_location = new_location.to_string();
    if catalog.register(ident, &md_location).await? {
        return Ok(Loaded {
            metadata: Arc::new(md),
            location: md_location,
        });
    }
    // Created concurrently by another invocation: use theirs, drop ours.
    super::writer::delete_files_best_effort(io, std::iter::once(md_location)).await;
    let theirs = catalog.current_location(ident).await?.ok_or_else(|| {
        Error::new(
            ErrorKind::Io,
            format!("table {ident} neither created nor found"),
        )
    })?;
    read_metadata(io, &theirs).await
}
