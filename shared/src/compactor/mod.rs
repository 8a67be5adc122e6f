//! Table maintenance: one pass of the snapshot-compactor over a pipeline's state table. The
//! same pass runs in the `snapshot-compactor` Lambda (an EventBridge schedule) and in
//! `refold compact`.
//!
//! Every fold-batch commit adds a snapshot, a data and a delete manifest and (when it updates
//! rows) a position-delete file; nothing else removes them. A pass, in this order:
//!
//! 1. **compaction**: per source partition whose files cross a threshold
//!    ([`policy::partitions_to_compact`]: delete files, small files, deleted rows), rewrite
//!    the live rows into sorted files of the target size, no delete file left; one `replace`
//!    commit per partition, carrying every offsets entry forward. It commits only on exactly
//!    the files it read: a fold-batch commit to the same partition in between makes it read
//!    again, and a fold-batch commit that loses to it looks its rows up again, so neither
//!    loses the other's rows (`table` module docs, step 5). Its commit reads only the
//!    partition's manifests and writes the entries of those it touches into one rewritten
//!    manifest per kind.
//! 2. **manifests**: drop manifests with no live file (what compaction left) and merge small
//!    ones per (partition, kind) (`table::manifests`), so the next merge reads one or two
//!    manifests of its partition instead of one per past commit.
//! 3. **checkpoint**: when `snapshots.interval` has passed since the last one (by the time in
//!    its name) and the state changed, tag main's current snapshot `checkpoint-<UTC time>`
//!    ([`policy::checkpoint_decision`]); keep `snapshots.max_snapshots`. After compaction, so
//!    the checkpoint holds compacted files.
//! 4. **expiry**: drop the snapshots no tag or branch points at and that were not the table's
//!    state within `snapshots.keep_recent` ([`policy::snapshots_to_expire`]).
//! 5. **orphans**: delete the files under the table's folders that no kept snapshot
//!    references and that are older than `snapshots.orphan_grace` ([`policy::orphans`]).
//!
//! A step that fails is reported and the pass goes on (each step is safe on its own: none
//! relies on an earlier one having run); the pass stops starting steps at its deadline. The
//! report ([`PassReport`]) says what each step did; `report::emf` makes it CloudWatch metrics.
//!
//! The clock is an argument ([`PassOptions::now_ms`]): tests and the benchmark run a pass "a
//! day later"; the handler passes the schedule event's time, never later than the real clock.

pub mod policy;

mod pass;
mod report;

pub use pass::{
    PassOptions, run_pass, step_archive, step_checkpoint, step_compaction, step_expiry,
    step_manifests, step_orphans,
};
pub use policy::MaintenancePolicy;
pub use report::{
    CheckpointReport, CompactionReport, ExpiryReport, OrphanReport, PartitionCompaction,
    PassReport, StepReport, StepStatus,
};

use crate::batch::CompiledPipeline;
use crate::error::Result;
use crate::table::{CatalogConfig, StateTable, TableLimits};

/// Opens (or creates) a pipeline's event archive for maintenance; None: it keeps none.
pub async fn open_archive(
    cp: &CompiledPipeline,
    catalog: CatalogConfig,
) -> Result<Option<crate::archive::Archive>> {
    match crate::engine::archive_config(cp, catalog) {
        Some(cfg) => Ok(Some(crate::archive::Archive::open_or_create(cfg).await?)),
        None => Ok(None),
    }
}

/// Opens (or creates) a pipeline's state table for maintenance: the table the pipeline's
/// fold writes, with the compaction's target file size as its file limit.
pub async fn open_table(cp: &CompiledPipeline, catalog: CatalogConfig) -> Result<StateTable> {
    let cfg = crate::engine::table_config(cp, catalog)?;
    let target = usize::try_from(cp.pipeline.compaction.target_file_bytes).unwrap_or(usize::MAX);
    let limits = TableLimits {
        target_file_size_bytes: target,
        ..TableLimits::default()
    };
    Ok(StateTable::open_or_create(cfg).await?.with_limits(limits))
}
