//! The event archive: every valid envelope of a source, appended exactly once to an
//! Iceberg table beside the state table. Kafka's retention is finite; the archive is the
//! full history: historical queries (Athena, Trino, DuckDB), replay of offsets Kafka no
//! longer has (`replay`), and one entity's state at any time (`refold history`).
//!
//! Exactly once, on its own: the archive keeps its own committed offsets, per topic
//! (`refold.offsets.<topic>/`[`OFFSETS_GROUP`], in each snapshot's summary and as a table
//! property, as the state table does, see [`crate::table::offsets`]), so a pipeline under a
//! new consumer group appends nothing already archived. An append writes the records at
//! or past the committed offset of their partition and moves it past the batch in the same
//! compare-and-set; a redelivered batch appends nothing, a batch that overlaps appends its
//! new suffix. fold-batch appends before it merges the state (ARCHITECTURE.md says why):
//! the archive is never behind the view.
//!
//! | module | concept |
//! |---|---|
//! | [`layout`] | schema (the envelope's fields, Kafka's coordinates), partition spec (day, entity type), sort order |
//! | `columns` | [`EventColumns`]: a batch's rows built straight into Arrow (the append path) |
//! | [`event`] | [`ArchivedEvent`]: a row read back, to a record, to and from Arrow |
//! | `append` | [`Archive::append`]: data files per Iceberg partition, one exactly-once commit |
//! | `read` | scans: an offset range of a partition, one entity's events, first offsets |
//! | `compact` | [`Archive::compact`]: small files merged per partition, one Kafka partition per file; snapshot expiry (the snapshot-compactor's step) |

use std::sync::Arc;

use arrow_schema::SchemaRef;
use iceberg::TableIdent;
use iceberg::io::FileIO;
use iceberg::spec::TableMetadata;

use crate::error::{Error, ErrorKind, Result};
use crate::table::files::ManifestCache;
use crate::table::hooks::{HookFn, HookPoint, Hooks};
use crate::table::retry::CommitTarget;
use crate::table::{CatalogConfig, CatalogSwap, Loaded, TableIdentity, TableLimits, catalog};

mod append;
mod columns;
mod compact;
pub mod event;
pub mod layout;
mod read;

pub use append::AppendOutcome;
pub use columns::EventColumns;
pub use compact::{ArchiveCompaction, ArchiveCompactionPolicy};
pub use event::ArchivedEvent;

/// Where an archive lives and whose offsets it keeps.
#[derive(Debug, Clone)]
pub struct ArchiveConfig {
    pub catalog: CatalogConfig,
    pub table: TableIdentity,
    pub topic: String,
    /// The row key the pipeline folds by (`entity_key`): recorded on the table, and a
    /// pipeline with another key is refused (its `entity_key` would mean something else).
    pub key_field: String,
}

/// The archive's offsets are the topic's, whichever pipeline appends: a pipeline with a
/// new consumer group (a re-projection) appends nothing already archived. Stored under
/// `refold.offsets.<topic>/` + this.
pub const OFFSETS_GROUP: &str = "refold-archive";

/// The table property naming the archive's key field.
pub const KEY_FIELD_PROPERTY: &str = "refold.archive-key-field";

/// An open event archive.
pub struct Archive {
    cfg: ArchiveConfig,
    ident: TableIdent,
    file_io: FileIO,
    catalog: Arc<dyn CatalogSwap>,
    arrow: SchemaRef,
    schema_id: i32,
    spec_id: i32,
    limits: TableLimits,
    manifests: ManifestCache,
    hooks: Hooks,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("table", &self.cfg.table.to_string())
            .finish()
    }
}

impl CommitTarget for Archive {
    fn load_base(&self) -> impl std::future::Future<Output = Result<Loaded>> + Send {
        self.load()
    }
    fn retry_limits(&self) -> &TableLimits {
        &self.limits
    }
}

impl Archive {
    /// The archive's Arrow schema (with Iceberg's field ids): what [`EventColumns::finish`]
    /// builds and [`Archive::append`] takes.
    pub fn arrow_schema(&self) -> &SchemaRef {
        &self.arrow
    }

    /// Opens the archive, creating it if missing; an existing one must have the archive's
    /// columns and Iceberg format 2.
    pub async fn open_or_create(cfg: ArchiveConfig) -> Result<Self> {
        let what = format!("event archive {}", cfg.table);
        Self::open_inner(cfg)
            .await
            .map_err(|e| e.with_context(what))
    }

    async fn open_inner(cfg: ArchiveConfig) -> Result<Self> {
        let layout = layout::layout(&cfg.topic)?;
        let ident = cfg.table.ident()?;
        let (catalog, file_io) = catalog::connect(&cfg.catalog).await?;
        let loaded = match catalog.current_location(&ident).await? {
            Some(loc) => catalog::read_metadata(&file_io, &loc).await?,
            None => {
                let mut props = layout.properties.clone();
                props.insert(KEY_FIELD_PROPERTY.to_owned(), cfg.key_field.clone());
                catalog::create_table(catalog.as_ref(), &file_io, &ident, &layout, props).await?
            }
        };
        let md = &loaded.metadata;
        crate::table::check_format(md, &ident)?;
        crate::table::schema::check_compatible(md.current_schema(), &layout.schema)?;
        if let Some(k) = md.properties().get(KEY_FIELD_PROPERTY)
            && *k != cfg.key_field
        {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "the archive's entity_key is `{k}` (table property {KEY_FIELD_PROPERTY}); \
                     this pipeline folds by `{}`: name another archive table",
                    cfg.key_field
                ),
            ));
        }
        let arrow = iceberg::arrow::schema_to_arrow_schema(md.current_schema())
            .map_err(|e| Error::new(ErrorKind::Internal, "archive arrow schema").with_source(e))?;
        let limits = TableLimits::default();
        Ok(Self {
            manifests: ManifestCache::new(limits.max_cached_manifests),
            schema_id: md.current_schema_id(),
            spec_id: md.default_partition_spec_id(),
            arrow: Arc::new(arrow),
            cfg,
            ident,
            file_io,
            catalog,
            limits,
            hooks: Hooks::default(),
        })
    }

    pub fn config(&self) -> &ArchiveConfig {
        &self.cfg
    }

    /// Sets (or with `None` clears) the hook of `point` on this handle (tests).
    #[doc(hidden)]
    pub fn set_hook(&self, point: HookPoint, f: Option<HookFn>) {
        self.hooks.set(point, f);
    }

    pub(crate) async fn load(&self) -> Result<Loaded> {
        catalog::load(self.catalog.as_ref(), &self.file_io, &self.ident).await
    }

    /// The archive's committed next offset per partition (empty: nothing archived).
    pub async fn committed_offsets(&self) -> Result<std::collections::BTreeMap<i32, i64>> {
        let l = self.load().await?;
        self.read_offsets(&l.metadata)
    }

    fn read_offsets(&self, md: &TableMetadata) -> Result<std::collections::BTreeMap<i32, i64>> {
        crate::table::offsets::read(
            md,
            &self.cfg.topic,
            OFFSETS_GROUP,
            self.limits.max_offset_history_snapshots,
        )
        .map_err(|e| e.with_context(format!("committed offsets of {}", self.cfg.table)))
    }

    /// Format 2 and the schema and spec this handle writes with (another engine may evolve
    /// the table between two attempts; files for the old ones must not be committed).
    fn check_base(&self, base: &Loaded) -> Result<()> {
        let md = &base.metadata;
        crate::table::check_format(md, &self.ident)?;
        if (md.current_schema_id(), md.default_partition_spec_id())
            != (self.schema_id, self.spec_id)
        {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "event archive {} changed under refold (schema or partition spec evolved by \
                     another engine): reopen it",
                    self.cfg.table
                ),
            ));
        }
        Ok(())
    }
}
