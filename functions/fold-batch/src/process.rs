//! One batch of source records through refold's core onto the state table, partition by
//! partition, exactly once in effect; poison records to the dead-letter store.
//!
//! Stand-in until `refold::batch::BatchProcessor` exists (same shape: `new(pipeline, table,
//! dead_letters)`, `process(records, early_dead_letters)`); built only on refold's public
//! API: `batch::prepare` / `Prepared::fold` (pure) and `StateTable::merge_batch`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use refold::batch::{CompiledPipeline, Counts, Folded, prepare};
use refold::dead_letter::{DeadLetter, DeadLetterStore};
use refold::error::{Error, ErrorKind, Result};
use refold::pipeline::ErrorPolicy;
use refold::record::SourceRecord;
use refold::table::{
    CatalogConfig, FoldedBatch, StateColumns, StateRow, StateTable, TableConfig, TableIdentity,
};

/// What one batch did.
#[derive(Debug, Default, Clone)]
pub struct BatchReport {
    /// Every record of the batch (decoded or not) is in exactly one count.
    pub counts: Counts,
    /// Under policy `fail`: per partition, the offset the source must deliver again from.
    pub failed_at: BTreeMap<i32, i64>,
    /// State rows written.
    pub keys: usize,
    /// Snapshots committed (one per partition that moved).
    pub snapshots: usize,
    pub fold_ms: f64,
    pub commit_ms: f64,
    /// The dead letters written (policy `dead_letter`).
    pub dead_letters: Vec<DeadLetter>,
}

pub struct BatchProcessor {
    cp: CompiledPipeline,
    table: StateTable,
    dead_letters: Arc<dyn DeadLetterStore>,
}

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
    })
}

/// The catalog from `REFOLD_WAREHOUSE` / `REFOLD_CATALOG_URI` (embedded default: a local
/// warehouse folder with `catalog.db` in it).
pub fn catalog_from_env() -> Result<CatalogConfig> {
    let warehouse = std::env::var("REFOLD_WAREHOUSE")
        .ok()
        .filter(|w| !w.is_empty())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                "REFOLD_WAREHOUSE is not set (a folder or s3://bucket/prefix)",
            )
        })?;
    let uri = std::env::var("REFOLD_CATALOG_URI")
        .ok()
        .filter(|u| !u.is_empty());
    if !warehouse.contains("://") && uri.is_none() {
        return CatalogConfig::embedded(std::path::Path::new(&warehouse));
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
    let mut storage = refold::table::StorageConfig::default();
    if let Ok(ep) = std::env::var("REFOLD_S3_ENDPOINT") {
        storage.s3_endpoint = Some(ep);
        storage.s3_path_style = true;
    }
    storage.s3_region = std::env::var("AWS_REGION").ok();
    storage.s3_access_key_id = std::env::var("AWS_ACCESS_KEY_ID").ok();
    storage.s3_secret_access_key = std::env::var("AWS_SECRET_ACCESS_KEY").ok();
    storage.s3_session_token = std::env::var("AWS_SESSION_TOKEN").ok();
    Ok(CatalogConfig::Sql {
        uri,
        warehouse,
        catalog_name: refold::table::DEFAULT_CATALOG_NAME.to_string(),
        storage,
    })
}

/// The pipeline from `REFOLD_PIPELINE` (a path) or `REFOLD_PIPELINE_INLINE` (the YAML).
pub fn pipeline_from_env() -> Result<CompiledPipeline> {
    let loaded = if let Some(yaml) = std::env::var("REFOLD_PIPELINE_INLINE")
        .ok()
        .filter(|y| !y.is_empty())
    {
        refold::pipeline::parse(&yaml, "REFOLD_PIPELINE_INLINE", &|k| std::env::var(k).ok())
    } else {
        let path = std::env::var("REFOLD_PIPELINE")
            .ok()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Config,
                    "set REFOLD_PIPELINE (a pipeline file) or REFOLD_PIPELINE_INLINE",
                )
            })?;
        refold::pipeline::load(std::path::Path::new(&path))?
    };
    for w in loaded.warnings() {
        tracing::warn!(problem = %w, "pipeline");
    }
    CompiledPipeline::compile(loaded.into_pipeline()?)
}

impl BatchProcessor {
    pub fn new(
        cp: CompiledPipeline,
        table: StateTable,
        dead_letters: Arc<dyn DeadLetterStore>,
    ) -> Self {
        Self {
            cp,
            table,
            dead_letters,
        }
    }

    /// Opens (or creates) the pipeline's state table in `catalog`.
    pub async fn open(
        cp: CompiledPipeline,
        catalog: CatalogConfig,
        dead_letters: Arc<dyn DeadLetterStore>,
    ) -> Result<Self> {
        let table = StateTable::open_or_create(table_config(&cp, catalog)?).await?;
        Ok(Self::new(cp, table, dead_letters))
    }

    /// Pipeline and catalog from the environment (see `crate::config`).
    pub async fn from_env(dead_letters: Arc<dyn DeadLetterStore>) -> Result<Self> {
        Self::open(pipeline_from_env()?, catalog_from_env()?, dead_letters).await
    }

    pub fn pipeline_name(&self) -> &str {
        self.cp.name()
    }

    pub fn pipeline(&self) -> &CompiledPipeline {
        &self.cp
    }

    pub fn table(&self) -> &StateTable {
        &self.table
    }

    /// Folds a batch (records in (partition, offset) order; `early` are records that could
    /// not be decoded at all, e.g. bad base64) and merges it, one snapshot per partition.
    pub async fn process(
        &self,
        records: Vec<SourceRecord>,
        early: Vec<DeadLetter>,
    ) -> Result<BatchReport> {
        let policy = self.cp.on_error;
        let mut by_partition: BTreeMap<i32, (Vec<SourceRecord>, Vec<DeadLetter>)> = BTreeMap::new();
        for r in records {
            by_partition.entry(r.partition).or_default().0.push(r);
        }
        for d in early {
            by_partition.entry(d.partition).or_default().1.push(d);
        }
        let committed_now = self.table.committed_offsets().await?;
        let mut report = BatchReport::default();
        for (p, (mut recs, early)) in by_partition {
            recs.sort_by_key(|r| r.offset);
            let committed0 = committed_now.get(&p).copied().unwrap_or(-1);
            let mut counts = Counts {
                received: recs.len() + early.len(),
                ..Counts::default()
            };
            // Records that never decoded: counted here, cut the partition under `fail`.
            let mut early_live = Vec::new();
            for d in early {
                if d.offset < committed0 {
                    counts.already_applied += 1;
                } else {
                    early_live.push(d);
                }
            }
            let mut cut: Option<i64> = None;
            let mut skipped_end: Option<i64> = None;
            match policy {
                ErrorPolicy::DeadLetter => counts.dead_lettered += early_live.len(),
                ErrorPolicy::Skip => {
                    counts.skipped += early_live.len();
                    // Skipped, not kept: only the partition's end still moves past them.
                    let end = early_live.iter().map(|d| d.offset + 1).max();
                    early_live.clear();
                    skipped_end = end;
                }
                ErrorPolicy::Fail => {
                    if let Some(first) = early_live.iter().map(|d| d.offset).min() {
                        cut = Some(first);
                        counts.deferred += early_live.len();
                        let before = recs.len();
                        recs.retain(|r| r.offset < first);
                        counts.deferred += before - recs.len();
                    }
                    early_live.clear();
                }
            }
            // The partition's end: after its last record, decoded or not (unless cut).
            let mut end = recs.last().map(|r| r.offset + 1).unwrap_or(i64::MIN);
            if let Some(m) = early_live
                .iter()
                .map(|d| d.offset + 1)
                .max()
                .or(skipped_end)
            {
                end = end.max(m);
            }
            let prepared = prepare(&self.cp, &recs)?;
            let keys = prepared.row_ids();
            let ends: BTreeMap<i32, i64> = if end == i64::MIN {
                BTreeMap::new()
            } else {
                BTreeMap::from([(p, end)])
            };
            let last: Mutex<Option<Folded>> = Mutex::new(None);
            let fold_time = Mutex::new(0f64);
            let t_merge = Instant::now();
            let outcome = if ends.is_empty() {
                None
            } else {
                Some(
                    self.table
                        .merge_batch(
                            p,
                            &keys,
                            |committed, priors: &HashMap<(String, String), StateRow>| {
                                let t = Instant::now();
                                let mut f = prepared.fold(&self.cp, priors, &|_| committed, &ends);
                                if let Some(c) = cut {
                                    f.failed_at
                                        .entry(p)
                                        .and_modify(|o| *o = (*o).min(c))
                                        .or_insert(c);
                                }
                                let next_offset =
                                    f.next_offsets.get(&p).copied().unwrap_or(committed);
                                let next_offset = match cut {
                                    Some(c) => next_offset.min(c).max(committed),
                                    None => next_offset,
                                };
                                let out = FoldedBatch {
                                    rows: f.rows.clone(),
                                    next_offset,
                                    extra_summary: BTreeMap::new(),
                                };
                                if let Ok(mut ft) = fold_time.lock() {
                                    *ft += t.elapsed().as_secs_f64() * 1e3;
                                }
                                if let Ok(mut l) = last.lock() {
                                    *l = Some(f);
                                }
                                Ok(out)
                            },
                        )
                        .await?,
                )
            };
            let merge_ms = t_merge.elapsed().as_secs_f64() * 1e3;
            let fold_ms = fold_time.lock().map(|f| *f).unwrap_or(0.0);
            let folded = last
                .lock()
                .map(|mut l| l.take())
                .unwrap_or(None)
                .unwrap_or_default();
            // (An `already_applied` outcome means the fold found nothing at or after the
            // committed offset: its counts say so, and it has no dead letters.)
            // `received` is already counted above, with the records that never decoded.
            counts += Counts {
                received: 0,
                ..folded.counts
            };
            report.keys += folded.rows.len();
            if outcome.as_ref().is_some_and(|o| o.snapshot_id.is_some()) {
                report.snapshots += 1;
            }
            let mut dls = early_live;
            dls.extend(folded.dead_letters);
            dls.sort_by_key(|d| d.offset);
            // After the commit: a crash in between loses these dead letters (the offsets
            // moved on); the store is at-least-once otherwise.
            self.dead_letters.put(&dls).await?;
            report.dead_letters.extend(dls);
            for (fp, o) in folded.failed_at {
                report.failed_at.insert(fp, o);
            }
            if let Some(c) = cut {
                report
                    .failed_at
                    .entry(p)
                    .and_modify(|o| *o = (*o).min(c))
                    .or_insert(c);
            }
            if !counts.balanced() {
                return Err(Error::new(
                    ErrorKind::Internal,
                    format!("batch accounting, partition {p}: {counts:?}"),
                ));
            }
            report.fold_ms += fold_ms;
            report.commit_ms += (merge_ms - fold_ms).max(0.0);
            report.counts += counts;
        }
        Ok(report)
    }
}
