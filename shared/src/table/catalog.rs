//! The catalog pointer of a table and the FileIO its files live on.
//!
//! Iceberg's atomicity is one compare-and-set of "current metadata file" in the catalog.
//! [`CatalogSwap`] is that operation and nothing else; `commit` builds the new metadata and
//! calls it. Per catalog:
//! - SQL catalog (SQLite, PostgreSQL; the JDBC/PyIceberg `iceberg_tables` schema):
//!   `UPDATE iceberg_tables SET metadata_location = new ... WHERE ... AND metadata_location = base`,
//!   won iff one row changed ([`SqlCatalogSwap`]).
//! - Glue (to add): `GetTable` gives `metadata_location` and `VersionId`; `UpdateTable` with
//!   that `VersionId` is the compare-and-set.
//! - REST (to add): `POST /v1/{prefix}/namespaces/{ns}/tables/{t}` with the request's
//!   `requirements` (main at the base snapshot, table uuid) and `updates`; 409 = lost.
//!   [`SwapRequest`] carries both so the REST adapter needs nothing else.
//!
//! Table creation goes through iceberg-rust's own `SqlCatalog`, so the catalog rows and the
//! first metadata file are exactly what other SQL-catalog clients expect.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use iceberg::io::{FileIO, FileIOBuilder};
use iceberg::spec::TableMetadata;
use iceberg::{
    Catalog, CatalogBuilder, NamespaceIdent, TableCreation, TableIdent, TableRequirement,
    TableUpdate,
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
}

/// The SQL catalog's compare-and-set, on SQLite or PostgreSQL.
#[derive(Debug)]
pub struct SqlCatalogSwap {
    pool: AnyPool,
    catalog_name: String,
    postgres: bool,
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
}

#[async_trait]
impl CatalogSwap for SqlCatalogSwap {
    async fn current_location(&self, ident: &TableIdent) -> Result<Option<String>> {
        let q = self.sql(
            "SELECT metadata_location FROM iceberg_tables WHERE catalog_name = ? AND table_namespace = ? \
             AND table_name = ? AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL)",
        );
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
            let file_io = FileIOBuilder::new(Arc::new(OpenDalResolvingStorageFactory::new()))
                .with_props(storage_props(storage))
                .build();
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
            let swap = SqlCatalogSwap {
                pool,
                catalog_name: catalog_name.clone(),
                postgres: is_postgres(&uri),
            };
            // A fresh database has no catalog tables yet: iceberg-rust's SqlCatalog creates them
            // (iceberg_tables, iceberg_namespace_properties) as other SQL-catalog clients expect.
            if swap.probe().await.is_err() {
                sql_catalog(cfg).await?;
            }
            Ok((Arc::new(swap), file_io))
        }
    }
}

async fn sql_catalog(cfg: &CatalogConfig) -> Result<iceberg_catalog_sql::SqlCatalog> {
    let CatalogConfig::Sql {
        uri,
        warehouse,
        catalog_name,
        storage,
    } = cfg;
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

pub(crate) async fn read_metadata(io: &FileIO, location: &str) -> Result<Loaded> {
    let md = TableMetadata::read_from(io, location)
        .await
        .io(|| format!("read table metadata {location}"))?;
    Ok(Loaded {
        metadata: Arc::new(md),
        location: location.to_string(),
    })
}

/// Creates namespace and table (tolerating a concurrent creator) and loads it.
pub(crate) async fn create_table(
    cfg: &CatalogConfig,
    ident: &TableIdent,
    layout: &TableLayout,
) -> Result<Loaded> {
    let cat = sql_catalog(cfg).await?;
    let ns: &NamespaceIdent = ident.namespace();
    if !cat
        .namespace_exists(ns)
        .await
        .io(|| format!("check namespace {ns:?}"))?
        && let Err(e) = cat.create_namespace(ns, HashMap::new()).await
        && !cat
            .namespace_exists(ns)
            .await
            .io(|| format!("check namespace {ns:?}"))?
    {
        return Err(Error::new(ErrorKind::Io, format!("create namespace {ns:?}")).with_source(e));
    }
    let creation = TableCreation::builder()
        .name(ident.name().to_string())
        .schema(layout.schema.clone())
        .partition_spec(layout.spec.clone())
        .sort_order(layout.sort_order.clone())
        .properties(layout.properties.clone())
        .build();
    let table = match cat.create_table(ns, creation).await {
        Ok(t) => t,
        Err(e) => match cat.load_table(ident).await {
            Ok(t) => t, // created concurrently by another invocation
            Err(_) => {
                return Err(
                    Error::new(ErrorKind::Io, format!("create table {ident}")).with_source(e)
                );
            }
        },
    };
    let location = table
        .metadata_location_result()
        .io(|| "metadata location of the new table".into())?;
    Ok(Loaded {
        metadata: table.metadata_ref(),
        location: location.to_string(),
    })
}
