//! The pass: each step gathers plain values from the table, asks `policy`, and carries the
//! decision out through the table's commits. See the module docs of `compactor`.

use std::time::Instant;

use super::policy::{self, CheckpointDecision, MaintenancePolicy};
use super::report::{
    CheckpointReport, CompactionReport, ExpiryReport, OrphanReport, PartitionCompaction,
    PassReport, StepReport, StepStatus,
};
use crate::archive::{Archive, ArchiveCompaction, ArchiveCompactionPolicy};
use crate::error::{Error, ErrorKind, Result};
use crate::table::StateTable;
use crate::table::hooks::HookPoint;
use crate::table::manifests::ManifestMergeOutcome;

/// Files one orphan listing may return before the step refuses (memory: a path each).
pub const MAX_LISTED_FILES: usize = 2_000_000;
/// Manifests at most this large are "small" (Iceberg's `commit.manifest.target-size-bytes`).
pub const MANIFEST_TARGET_BYTES: u64 = 8 * 1024 * 1024;

/// How one pass runs.
#[derive(Debug, Clone)]
pub struct PassOptions {
    /// The pass's clock, milliseconds since the Unix epoch: the checkpoint's name and
    /// cadence, the expiry window and the orphans' grace period are measured from it. Outside
    /// tests it must not be later than the real clock (a later one shortens the grace).
    pub now_ms: i64,
    /// Take a checkpoint whatever the interval and even if nothing changed (`--now`).
    pub force_checkpoint: bool,
    /// No step starts after this instant (a Lambda's deadline minus a margin).
    pub deadline: Option<Instant>,
    /// The pipeline's name, for the report and the metrics' dimension.
    pub pipeline: String,
}

impl PassOptions {
    pub fn now(pipeline: impl Into<String>) -> Self {
        Self {
            now_ms: crate::emf::now_ms(),
            force_checkpoint: false,
            deadline: None,
            pipeline: pipeline.into(),
        }
    }

    fn out_of_time(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Runs a step unless the deadline passed; times it; turns its error into a failed step.
async fn step<T>(
    opts: &PassOptions,
    name: &str,
    f: impl std::future::Future<Output = Result<StepReport<T>>>,
) -> StepReport<T> {
    if opts.out_of_time() {
        tracing::warn!(step = name, "skipped: the pass reached its deadline");
        return StepReport::skipped("the pass reached its deadline");
    }
    let t = Instant::now();
    match f.await {
        Ok(mut r) => {
            r.ms = ms_since(t);
            r
        }
        Err(e) => {
            tracing::error!(step = name, error = %e, "maintenance step failed");
            StepReport::failed(ms_since(t), e)
        }
    }
}

/// One whole pass over `table` (see the module docs for the order and why).
pub async fn run_pass(
    table: &StateTable,
    archive: Option<&Archive>,
    policy: &MaintenancePolicy,
    opts: &PassOptions,
) -> PassReport {
    let t = Instant::now();
    let mut r = PassReport {
        pipeline: opts.pipeline.clone(),
        table: table.config().table.to_string(),
        now_ms: opts.now_ms,
        ..PassReport::default()
    };
    r.before = table.table_stats().await.ok();
    r.compaction = step(opts, "compaction", step_compaction(table, policy, opts)).await;
    r.manifests = step(opts, "manifests", step_manifests(table, policy)).await;
    r.checkpoint = step(opts, "checkpoint", step_checkpoint(table, policy, opts)).await;
    r.expiry = step(opts, "expiry", step_expiry(table, policy, opts)).await;
    r.orphans = step(opts, "orphans", step_orphans(table, policy, opts)).await;
    r.archive = match archive {
        Some(a) => step(opts, "archive", step_archive(a, policy)).await,
        None => StepReport::skipped("the pipeline keeps no event archive"),
    };
    r.after = table.table_stats().await.ok();
    r.ms = ms_since(t);
    r
}

/// Snapshots of the event archive a pass keeps (the archive is append-only: history is its
/// rows, not its snapshots).
pub const ARCHIVE_SNAPSHOTS_KEPT: usize = 100;

/// Step 6: the event archive's small files merged per partition (day, entity type), by the
/// pipeline's `compaction.small_files` and `small_file_bytes`.
pub async fn step_archive(
    archive: &Archive,
    policy: &MaintenancePolicy,
) -> Result<StepReport<ArchiveCompaction>> {
    let c = &policy.compaction;
    let mut out = archive
        .compact(&ArchiveCompactionPolicy {
            min_small_files: c.small_files as usize,
            small_file_bytes: c.small_file_bytes,
            max_rows: crate::table::TableLimits::default().max_rows_per_compaction as u64,
        })
        .await?;
    out.snapshots_expired = archive.expire_snapshots(ARCHIVE_SNAPSHOTS_KEPT).await?;
    tracing::info!(
        step = "archive",
        snapshots_expired = out.snapshots_expired,
        partitions = out.partitions,
        files_removed = out.files_removed,
        files_added = out.files_added,
        rows = out.rows,
        "archive compacted"
    );
    Ok(StepReport::done(0.0, out))
}

/// Step 2: merge small manifests, drop those with no live file left (a compaction's).
pub async fn step_manifests(
    table: &StateTable,
    policy: &MaintenancePolicy,
) -> Result<StepReport<ManifestMergeOutcome>> {
    let min_count = policy.compaction.manifests as usize;
    let out = table
        .merge_manifests(min_count, MANIFEST_TARGET_BYTES)
        .await?;
    tracing::info!(
        step = "manifests",
        before = out.manifests_before,
        replaced = out.manifests_replaced,
        created = out.manifests_created,
        dropped = out.manifests_dropped,
        entries = out.entries,
        snapshot_id = out.snapshot_id,
        "manifests merged"
    );
    Ok(StepReport::done(0.0, out))
}

/// Step 1: compact every partition past a threshold; a partition that fails (a limit, a
/// commit race lost too often) is reported and the others go on.
pub async fn step_compaction(
    table: &StateTable,
    policy: &MaintenancePolicy,
    opts: &PassOptions,
) -> Result<StepReport<CompactionReport>> {
    let stats = table.partition_stats().await?;
    let chosen = policy::partitions_to_compact(&stats, &policy.compaction);
    let mut report = CompactionReport {
        partitions_checked: stats.len(),
        partitions: vec![],
    };
    for (partition, reasons) in chosen {
        if opts.out_of_time() {
            tracing::warn!(
                partition,
                "compaction skipped: the pass reached its deadline"
            );
            break;
        }
        let t = Instant::now();
        let mut pc = PartitionCompaction {
            partition,
            reasons,
            status: StepStatus::Done,
            ms: 0.0,
            rows: 0,
            data_files_removed: 0,
            delete_files_removed: 0,
            data_files_added: 0,
            error: None,
        };
        match table.compact(Some(partition)).await {
            Ok(o) => {
                pc.rows = o.rows_kept;
                pc.data_files_removed = o.data_files_removed;
                pc.delete_files_removed = o.delete_files_removed;
                pc.data_files_added = o.data_files_added;
            }
            Err(e) => {
                pc.status = StepStatus::Failed;
                pc.error = Some(e.to_string());
            }
        }
        pc.ms = ms_since(t);
        tracing::info!(
            step = "compaction",
            partition,
            reasons = ?pc.reasons,
            status = ?pc.status,
            rows = pc.rows,
            data_files_removed = pc.data_files_removed,
            delete_files_removed = pc.delete_files_removed,
            data_files_added = pc.data_files_added,
            error = pc.error.as_deref(),
            ms = pc.ms,
            "partition compacted"
        );
        report.partitions.push(pc);
    }
    let failed = report
        .partitions
        .iter()
        .filter(|p| p.status == StepStatus::Failed)
        .count();
    if failed > 0 {
        let mut r = StepReport::failed(0.0, format!("{failed} partition(s) failed"));
        r.detail = Some(report);
        return Ok(r);
    }
    Ok(StepReport::done(0.0, report))
}

/// Step 3: tag a checkpoint when due.
pub async fn step_checkpoint(
    table: &StateTable,
    policy: &MaintenancePolicy,
    opts: &PassOptions,
) -> Result<StepReport<CheckpointReport>> {
    let h = table.history().await?;
    if h.current.is_none() {
        return Ok(StepReport::skipped("the table has no snapshot yet"));
    }
    let checkpoints = table.checkpoints().await?;
    let time_of = |c: &crate::table::as_of::Checkpoint| {
        policy::checkpoint_time_ms(&c.name).unwrap_or(c.snapshot_time_ms)
    };
    let last = checkpoints
        .iter()
        .max_by_key(|c| (time_of(c), c.name.clone()));
    let unchanged = last.is_some_and(|c| policy::state_unchanged_since(&h, c.snapshot_id));
    let decision = policy::checkpoint_decision(
        last.map(|c| (c.name.as_str(), time_of(c))),
        unchanged,
        opts.now_ms,
        policy.snapshots.interval_ms,
        opts.force_checkpoint,
    );
    let taken = match &decision {
        CheckpointDecision::Take { name } => {
            let max_kept = policy.snapshots.max_snapshots.max(1) as usize;
            Some(table.take_checkpoint(name, max_kept).await?)
        }
        _ => None,
    };
    tracing::info!(
        step = "checkpoint",
        decision = ?decision,
        snapshot_id = taken.as_ref().map(|t| t.snapshot_id),
        dropped = ?taken.as_ref().map(|t| &t.dropped),
        "checkpoint"
    );
    Ok(StepReport::done(0.0, CheckpointReport { decision, taken }))
}

/// Step 4: expire what no tag and no recent state needs.
pub async fn step_expiry(
    table: &StateTable,
    policy: &MaintenancePolicy,
    opts: &PassOptions,
) -> Result<StepReport<ExpiryReport>> {
    let keep_recent_ms = policy.snapshots.keep_recent_ms;
    let now = opts.now_ms;
    let outcome = table
        .expire_snapshots_by(|h| policy::snapshots_to_expire(h, now, keep_recent_ms))
        .await?;
    tracing::info!(
        step = "expiry",
        before = outcome.snapshots_before,
        expired = outcome.expired,
        keep_recent_ms,
        "snapshots expired"
    );
    Ok(StepReport::done(
        0.0,
        ExpiryReport {
            keep_recent_ms,
            outcome,
        },
    ))
}

/// Step 5: delete unreferenced files past the grace period. Lists first, then reads the
/// references (see `table::orphans` for why that order is safe).
pub async fn step_orphans(
    table: &StateTable,
    policy: &MaintenancePolicy,
    opts: &PassOptions,
) -> Result<StepReport<OrphanReport>> {
    let grace_ms = policy.snapshots.orphan_grace_ms;
    let listed = table.list_files(MAX_LISTED_FILES).await?;
    table.run_hook(HookPoint::OrphansAfterList, 1).await;
    let refs = table.referenced_files().await?;
    if let Some(p) = refs.unknown.first() {
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "the table references {} file(s) refold cannot compare with a listing, e.g. \
                 {p}: orphan removal skipped",
                refs.unknown.len()
            ),
        ));
    }
    let plan = policy::orphans(&listed, &refs.paths, opts.now_ms, grace_ms);
    let deleted = table.delete_orphans(&plan.delete).await?;
    let report = OrphanReport {
        grace_ms,
        listed: listed.len(),
        referenced: plan.referenced,
        young: plan.young,
        undated: plan.undated,
        deleted: deleted.deleted,
        deleted_bytes: plan.delete_bytes,
        failed: deleted.failed,
    };
    tracing::info!(
        step = "orphans",
        listed = report.listed,
        referenced = report.referenced,
        young = report.young,
        undated = report.undated,
        deleted = report.deleted,
        deleted_bytes = report.deleted_bytes,
        failed = report.failed,
        grace_ms,
        "orphan files removed"
    );
    Ok(StepReport::done(0.0, report))
}
