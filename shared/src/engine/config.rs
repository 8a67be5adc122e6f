//! An engine's configuration: the state table a pipeline writes, and everything a function
//! reads from its environment (once per container).
//!
//! | variable | meaning |
//! |---|---|
//! | `REFOLD_PIPELINE` | path of the pipeline file (YAML), or |
//! | `REFOLD_PIPELINE_INLINE` | the pipeline YAML itself |
//! | `REFOLD_CATALOG` | `sql` (default) or `glue` (opened by `refold_aws::catalog_from_env`) |
//! | `REFOLD_WAREHOUSE` | warehouse: a local folder or `s3://bucket/prefix` |
//! | `REFOLD_CATALOG_URI` | SQL catalog (`sqlite:/path/catalog.db`, `postgres://...`); default `<warehouse>/catalog.db` for a local warehouse |
//! | `REFOLD_DEAD_LETTER` | dead letters: a local folder or `s3://bucket/prefix`; default `<warehouse>/dead-letters` for a local warehouse |
//! | `REFOLD_S3_ENDPOINT` | S3 endpoint override (moto, MinIO), path-style |
//! | `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` | S3 credentials (Lambda sets them) |

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::archive::ArchiveConfig;
use crate::batch::CompiledPipeline;
use crate::dead_letter::{DeadLetterStore, LocalDeadLetters, ObjectDeadLetters};
use crate::error::{Error, ErrorKind, Result};
use crate::pipeline::SinkMode;
use crate::table::{
    CatalogConfig, DEFAULT_CATALOG_NAME, StateColumns, StorageConfig, TableConfig, TableIdentity,
};

/// Table property naming the keying rule the table was built under (`batch::KeyCheck`).
pub const KEYING_PROPERTY: &str = "refold.keying";

/// The state table a pipeline writes: its sink's table, keyed by the fold's `key_field`,
/// typed columns when the pipeline declares its `state_type`, else one JSON column.
pub fn table_config(cp: &CompiledPipeline, catalog: CatalogConfig) -> Result<TableConfig> {
    let p = &cp.pipeline;
    let t = p.transformation();
    let source = p.source_of(t);
    let sink = p
        .sinks
        .values()
        .find(|s| s.input.as_deref().is_none_or(|i| i == t.name))
        .ok_or_else(|| Error::new(ErrorKind::Config, "the pipeline has no sink"))?;
    if sink.mode != SinkMode::MergeOnKey {
        // `refold validate` rejects it with its line; this guards every other way in.
        return Err(Error::new(
            ErrorKind::Config,
            format!("sink `{}`: only mode merge_on_key is supported", sink.name),
        ));
    }
    let columns = match t.state_type.as_deref().and_then(|n| p.state_types.get(n)) {
        Some(st) => {
            StateColumns::Typed(st.columns.iter().map(|c| (c.name.clone(), c.ty)).collect())
        }
        None => StateColumns::Json,
    };
    Ok(TableConfig {
        catalog,
        table: TableIdentity {
            namespace: sink.table.namespace.clone(),
            name: sink.table.name.clone(),
        },
        key_field: cp.key_field.clone(),
        columns,
        topic: source.topic.clone(),
        consumer_group: source.consumer_group.clone(),
        properties: creation_properties(cp, source.partitions),
    })
}

/// What the engine records on a state table it creates: the keying rule and, when the
/// pipeline declares it, the source's partition count.
fn creation_properties(cp: &CompiledPipeline, partitions: Option<u32>) -> BTreeMap<String, String> {
    let mut props = BTreeMap::from([(
        KEYING_PROPERTY.to_owned(),
        cp.key_check.property(&cp.key_field),
    )]);
    if let Some(n) = partitions {
        props.insert(
            super::partitions::SOURCE_PARTITIONS_PROPERTY.to_owned(),
            n.to_string(),
        );
    }
    props
}

/// The event archive a pipeline appends to (None: `archive: false`), in `catalog`.
pub fn archive_config(cp: &CompiledPipeline, catalog: CatalogConfig) -> Option<ArchiveConfig> {
    let p = &cp.pipeline;
    let t = p.transformation();
    let table = p.archive_table(t)?;
    let source = p.source_of(t);
    Some(ArchiveConfig {
        catalog,
        table: TableIdentity {
            namespace: table.namespace,
            name: table.name,
        },
        topic: source.topic.clone(),
        key_field: cp.key_field.clone(),
    })
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Object-store settings from the environment (`REFOLD_S3_ENDPOINT`, the AWS variables).
pub fn storage_from_env() -> StorageConfig {
    let endpoint = env("REFOLD_S3_ENDPOINT");
    StorageConfig {
        s3_path_style: endpoint.is_some(),
        s3_endpoint: endpoint,
        s3_region: env("AWS_REGION"),
        s3_access_key_id: env("AWS_ACCESS_KEY_ID"),
        s3_secret_access_key: env("AWS_SECRET_ACCESS_KEY"),
        s3_session_token: env("AWS_SESSION_TOKEN"),
    }
}

/// Which catalog `REFOLD_CATALOG` names: `sql` (the default) or `glue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogKind {
    Sql,
    Glue,
}

/// `REFOLD_CATALOG` (`sql` when unset).
pub fn catalog_kind_from_env() -> Result<CatalogKind> {
    match env("REFOLD_CATALOG").as_deref() {
        None | Some("sql") => Ok(CatalogKind::Sql),
        Some("glue") => Ok(CatalogKind::Glue),
        Some(other) => Err(Error::new(
            ErrorKind::Config,
            format!("REFOLD_CATALOG=`{other}`: expected `sql` or `glue`"),
        )),
    }
}

/// The catalog from `REFOLD_WAREHOUSE` / `REFOLD_CATALOG_URI` (embedded default: a local
/// warehouse folder with `catalog.db` in it). `REFOLD_CATALOG=glue` is refused here: the
/// Glue adapter lives in `refold-aws` (`refold_aws::catalog_from_env` reads both).
pub fn catalog_from_env() -> Result<CatalogConfig> {
    if catalog_kind_from_env()? == CatalogKind::Glue {
        return Err(Error::new(
            ErrorKind::Config,
            "REFOLD_CATALOG=glue: this program opens SQL catalogs only; the Glue catalog comes \
             from refold-aws (refold_aws::catalog_from_env)",
        ));
    }
    let warehouse = env("REFOLD_WAREHOUSE").ok_or_else(|| {
        Error::new(
            ErrorKind::Config,
            "REFOLD_WAREHOUSE is not set (a folder or s3://bucket/prefix)",
        )
    })?;
    let uri = env("REFOLD_CATALOG_URI");
    if !warehouse.contains("://") && uri.is_none() {
        return CatalogConfig::embedded(Path::new(&warehouse));
    }
    let uri = uri.ok_or_else(|| Error::new(ErrorKind::Config, "REFOLD_CATALOG_URI is not set"))?;
    let warehouse = if warehouse.contains("://") {
        warehouse
    } else {
        let abs = std::path::absolute(&warehouse).map_err(|e| {
            Error::new(ErrorKind::Config, format!("warehouse {warehouse}")).with_source(e)
        })?;
        format!("file://{}", abs.display())
    };
    Ok(CatalogConfig::Sql {
        uri,
        warehouse,
        catalog_name: DEFAULT_CATALOG_NAME.to_string(),
        storage: storage_from_env(),
    })
}

/// The pipeline from `REFOLD_PIPELINE` (a path) or `REFOLD_PIPELINE_INLINE` (the YAML).
pub fn pipeline_from_env() -> Result<CompiledPipeline> {
    let loaded = if let Some(yaml) = env("REFOLD_PIPELINE_INLINE") {
        crate::pipeline::parse(&yaml, "REFOLD_PIPELINE_INLINE", &|k| std::env::var(k).ok())
    } else {
        let path = env("REFOLD_PIPELINE").ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                "set REFOLD_PIPELINE (a pipeline file) or REFOLD_PIPELINE_INLINE",
            )
        })?;
        crate::pipeline::load(Path::new(&path))?
    };
    for w in loaded.warnings() {
        tracing::warn!(problem = %w, "pipeline");
    }
    CompiledPipeline::compile(loaded.into_pipeline()?)
}

/// Where the dead letters go, from `REFOLD_DEAD_LETTER` (or next to a local warehouse).
pub fn dead_letters_from_env() -> Result<Arc<dyn DeadLetterStore>> {
    let target = match env("REFOLD_DEAD_LETTER") {
        Some(t) => t,
        None => match env("REFOLD_WAREHOUSE").filter(|w| !w.contains("://")) {
            Some(w) => format!("{}/dead-letters", w.trim_end_matches('/')),
            None => {
                return Err(Error::new(
                    ErrorKind::Config,
                    "REFOLD_DEAD_LETTER is not set (a local folder or s3://bucket/prefix)",
                ));
            }
        },
    };
    dead_letters_at(&target, &storage_from_env())
}

/// A dead-letter store for a local folder (`/path`, `file:///path`) or `s3://bucket/prefix`.
pub fn dead_letters_at(target: &str, storage: &StorageConfig) -> Result<Arc<dyn DeadLetterStore>> {
    if let Some(path) = target.strip_prefix("file://") {
        Ok(Arc::new(LocalDeadLetters::new(path)))
    } else if target.starts_with("s3://") {
        Ok(Arc::new(ObjectDeadLetters::at(target, storage)?))
    } else if target.contains("://") {
        Err(Error::new(
            ErrorKind::Config,
            format!("dead letters: unsupported URL `{target}` (a folder or s3://)"),
        ))
    } else {
        Ok(Arc::new(LocalDeadLetters::new(target)))
    }
}
