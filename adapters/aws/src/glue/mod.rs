//! The Glue Data Catalog as a state table's catalog ([`CatalogSwap`]).
//!
//! A table is a Glue table as Athena and every Iceberg Glue catalog (Java, PyIceberg,
//! iceberg-rust) have it: `TableType=EXTERNAL_TABLE`, `Parameters.table_type=ICEBERG`,
//! `Parameters.metadata_location` (and `previous_metadata_location`), the table's location and
//! columns in its `StorageDescriptor`. A namespace is a Glue database, created when missing
//! (see [`names`] for how namespaces and names map). New tables go under the database's
//! `LocationUri`, else `<warehouse>/<database>.db/<table>` (Java's and PyIceberg's default).
//!
//! The compare-and-set: `GetTable` gives `metadata_location` and `VersionId`; refold checks
//! `metadata_location` is still the base, then `UpdateTable` with that `VersionId`, which Glue
//! refuses with `ConcurrentModificationException` when another writer updated the table in
//! between. Both the check and the refusal are a lost race (`Ok(false)`); the `VersionId`
//! is what guards the window between `GetTable` and `UpdateTable`. moto (5.2.5) ignores
//! `VersionId`: the test stack adds Glue's check to it (`tests/py/moto_server.py`), without
//! which concurrent writers on one table (a replay's shards) lose commits there.
//! `UpdateTable` skips Glue's version archive (`SkipArchive`, Iceberg's default too): every
//! batch commits, and archived versions would pile up by the thousand.
//!
//! Cost: two Glue calls per commit (about 20-40 ms in a region), one per load.

mod columns;
pub mod names;

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_glue::Client;
use aws_sdk_glue::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_glue::types::{Database, DatabaseInput, StorageDescriptor, Table, TableInput};
use iceberg::TableIdent;
use iceberg::io::FileIO;
use iceberg::spec::TableMetadata;
use refold::error::{Error, ErrorKind, Result};
use refold::table::{CatalogSwap, StorageConfig, SwapRequest};

pub use columns::{glue_columns, hive_type};
pub use names::{GlueName, glue_name};

/// Glue table parameter keys, as Iceberg's Glue catalogs spell them.
pub const TABLE_TYPE_PARAM: &str = "table_type";
pub const METADATA_LOCATION_PARAM: &str = "metadata_location";
pub const PREVIOUS_METADATA_LOCATION_PARAM: &str = "previous_metadata_location";
pub const ICEBERG_TABLE_TYPE: &str = "ICEBERG";
pub const EXTERNAL_TABLE: &str = "EXTERNAL_TABLE";

/// Where the Glue catalog is and where its tables' files go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlueConfig {
    /// `s3://bucket/prefix`: new tables of a database without `LocationUri` go under
    /// `<warehouse>/<database>.db/<table>`.
    pub warehouse: String,
    /// The account whose catalog holds the tables; `None`: the caller's own.
    pub catalog_id: Option<String>,
    /// Endpoint override (moto); `None`: the SDK's (`AWS_ENDPOINT_URL_GLUE`, the region's).
    pub endpoint: Option<String>,
    /// The object store of the tables' files (iceberg's `FileIO`).
    pub storage: StorageConfig,
}

/// The Glue catalog's compare-and-set.
#[derive(Debug, Clone)]
pub struct GlueCatalogSwap {
    client: Client,
    catalog_id: Option<String>,
    warehouse: String,
    file_io: FileIO,
}

fn glue_err<E>(what: String) -> impl FnOnce(E) -> Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    // The SDK's own Display says only "service error"; its context names code and message.
    move |e| {
        let detail = DisplayErrorContext(&e).to_string();
        Error::new(ErrorKind::Io, format!("{what}: {detail}"))
    }
}

/// The error code of a failed Glue call, if the service answered one.
fn code_of<E: ProvideErrorMetadata>(e: &aws_sdk_glue::error::SdkError<E>) -> Option<&str> {
    e.as_service_error().and_then(ProvideErrorMetadata::code)
}

impl GlueCatalogSwap {
    /// A Glue client from the default AWS configuration chain (Lambda's role, or the
    /// `AWS_*` variables), with `cfg.endpoint` when set; region `us-east-1` when none is set.
    pub async fn connect(cfg: &GlueConfig) -> Result<Self> {
        if !cfg.warehouse.contains("://") {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "Glue warehouse `{}`: expected s3://bucket/prefix",
                    cfg.warehouse
                ),
            ));
        }
        let shared = aws_config::load_from_env().await;
        let mut b = aws_sdk_glue::config::Builder::from(&shared);
        if let Some(ep) = &cfg.endpoint {
            b = b.endpoint_url(ep);
        }
        if shared.region().is_none() {
            b = b.region(aws_sdk_glue::config::Region::new("us-east-1"));
        }
        Ok(Self {
            client: Client::from_conf(b.build()),
            catalog_id: cfg.catalog_id.clone(),
            warehouse: cfg.warehouse.trim_end_matches('/').to_owned(),
            file_io: refold::table::catalog::file_io(&cfg.storage),
        })
    }

    /// The Glue client (tests and operators inspect tables with it).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The Glue table, `None` if it (or its database) does not exist.
    pub async fn get_table(&self, name: &GlueName) -> Result<Option<Table>> {
        let res = self
            .client
            .get_table()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(&name.database)
            .name(&name.table)
            .send()
            .await;
        match res {
            Ok(out) => Ok(out.table),
            Err(e) if code_of(&e) == Some("EntityNotFoundException") => Ok(None),
            Err(e) => Err(glue_err(format!("Glue GetTable {name}"))(e)),
        }
    }

    /// Creates the database unless it exists (a concurrent creator is fine). Asks first, so
    /// a role without `glue:CreateDatabase` works on a database made beforehand.
    async fn ensure_database(&self, database: &str) -> Result<()> {
        if self.get_database(database).await?.is_some() {
            return Ok(());
        }
        let input = DatabaseInput::builder()
            .name(database)
            .description("refold state tables")
            .build()
            .map_err(|e| Error::new(ErrorKind::Internal, "Glue database input").with_source(e))?;
        let res = self
            .client
            .create_database()
            .set_catalog_id(self.catalog_id.clone())
            .database_input(input)
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if code_of(&e) == Some("AlreadyExistsException") => Ok(()),
            Err(e) => Err(glue_err(format!("Glue CreateDatabase {database}"))(e)),
        }
    }

    /// The Glue database, `None` if it does not exist.
    async fn get_database(&self, database: &str) -> Result<Option<Database>> {
        let res = self
            .client
            .get_database()
            .set_catalog_id(self.catalog_id.clone())
            .name(database)
            .send()
            .await;
        match res {
            Ok(out) => Ok(out.database),
            Err(e) if code_of(&e) == Some("EntityNotFoundException") => Ok(None),
            Err(e) => Err(glue_err(format!("Glue GetDatabase {database}"))(e)),
        }
    }
}

/// `metadata_location` of an Iceberg Glue table; an error for a table that is not Iceberg.
fn metadata_location<'a>(name: &GlueName, table: &'a Table) -> Result<&'a str> {
    let params = table.parameters();
    let param = |k: &str| params.and_then(|p| p.get(k)).map(String::as_str);
    if !param(TABLE_TYPE_PARAM).is_some_and(|t| t.eq_ignore_ascii_case(ICEBERG_TABLE_TYPE)) {
        return Err(Error::new(
            ErrorKind::Config,
            format!("Glue table {name} is not an Iceberg table (table_type is not ICEBERG)"),
        ));
    }
    param(METADATA_LOCATION_PARAM).ok_or_else(|| {
        Error::new(
            ErrorKind::Io,
            format!("Glue table {name} has no metadata_location"),
        )
    })
}

/// The Glue definition of an Iceberg table at `location` (metadata `md`): `prior`'s
/// parameters kept (other engines' and users' keys), the pointer set.
fn table_input(
    name: &GlueName,
    prior: Option<&Table>,
    location: &str,
    previous: Option<&str>,
    md: &TableMetadata,
) -> Result<TableInput> {
    let mut params: HashMap<String, String> = prior
        .and_then(Table::parameters)
        .cloned()
        .unwrap_or_default();
    params.insert(TABLE_TYPE_PARAM.into(), ICEBERG_TABLE_TYPE.into());
    params.insert(METADATA_LOCATION_PARAM.into(), location.into());
    match previous {
        Some(p) => params.insert(PREVIOUS_METADATA_LOCATION_PARAM.into(), p.into()),
        None => params.remove(PREVIOUS_METADATA_LOCATION_PARAM),
    };
    let sd = StorageDescriptor::builder()
        .location(md.location())
        .set_columns(Some(glue_columns(md.current_schema())?))
        .build();
    TableInput::builder()
        .name(&name.table)
        .table_type(EXTERNAL_TABLE)
        .set_description(prior.and_then(|t| t.description.clone()))
        .set_owner(prior.and_then(|t| t.owner.clone()))
        .set_parameters(Some(params))
        .storage_descriptor(sd)
        .build()
        .map_err(|e| {
            Error::new(ErrorKind::Internal, format!("Glue input of {name}")).with_source(e)
        })
}

#[async_trait]
impl CatalogSwap for GlueCatalogSwap {
    async fn current_location(&self, ident: &TableIdent) -> Result<Option<String>> {
        let name = glue_name(ident)?;
        match self.get_table(&name).await? {
            Some(t) => Ok(Some(metadata_location(&name, &t)?.to_owned())),
            None => Ok(None),
        }
    }

    async fn swap(&self, req: SwapRequest<'_>) -> Result<bool> {
        let name = glue_name(req.ident)?;
        let table = self
            .get_table(&name)
            .await?
            .ok_or_else(|| Error::new(ErrorKind::Io, format!("Glue table {name} vanished")))?;
        if metadata_location(&name, &table)? != req.base_location {
            return Ok(false);
        }
        let input = table_input(
            &name,
            Some(&table),
            req.new_location,
            Some(req.base_location),
            req.new_metadata,
        )?;
        let res = self
            .client
            .update_table()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(&name.database)
            .table_input(input)
            .set_version_id(table.version_id.clone())
            .skip_archive(true)
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if code_of(&e) == Some("ConcurrentModificationException") => {
                tracing::debug!(table = %name, "Glue UpdateTable lost to a concurrent writer");
                Ok(false)
            }
            Err(e) => Err(glue_err(format!("Glue UpdateTable {name}"))(e)),
        }
    }

    async fn new_table_location(&self, ident: &TableIdent) -> Result<String> {
        let name = glue_name(ident)?;
        let db = self.get_database(&name.database).await?;
        let base = match db.and_then(|d| d.location_uri).filter(|l| !l.is_empty()) {
            Some(l) => l.trim_end_matches('/').to_owned(),
            None => format!("{}/{}.db", self.warehouse, name.database),
        };
        Ok(format!("{base}/{}", name.table))
    }

    async fn register(&self, ident: &TableIdent, metadata_location: &str) -> Result<bool> {
        let name = glue_name(ident)?;
        self.ensure_database(&name.database).await?;
        let md = TableMetadata::read_from(&self.file_io, metadata_location)
            .await
            .map_err(|e| {
                Error::new(ErrorKind::Io, format!("read {metadata_location}")).with_source(e)
            })?;
        let input = table_input(&name, None, metadata_location, None, &md)?;
        let res = self
            .client
            .create_table()
            .set_catalog_id(self.catalog_id.clone())
            .database_name(&name.database)
            .table_input(input)
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if code_of(&e) == Some("AlreadyExistsException") => Ok(false),
            Err(e) => Err(glue_err(format!("Glue CreateTable {name}"))(e)),
        }
    }
}
