//! `refold compact <pipeline.yaml> --warehouse DIR [--now] [--json]`: one maintenance pass
//! over the pipeline's state table, as the snapshot-compactor Lambda runs it on a schedule
//! (`refold::compactor`): manifests, compaction, checkpoint, expiry, orphans.

use std::path::Path;
use std::process::ExitCode;

use refold::compactor::{self, MaintenancePolicy, PassOptions, PassReport, StepReport};

pub async fn run(
    pipeline: &Path,
    warehouse: &Path,
    force_checkpoint: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (cp, table) = crate::state::open(pipeline, warehouse).await?;
    let catalog = refold::table::CatalogConfig::embedded(warehouse)?;
    let archive = compactor::open_archive(&cp, catalog).await?;
    let mut opts = PassOptions::now(cp.name());
    opts.force_checkpoint = force_checkpoint;
    let report = compactor::run_pass(
        &table,
        archive.as_ref(),
        &MaintenancePolicy::of(&cp.pipeline),
        &opts,
    )
    .await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_summary(&report);
    }
    let failed = report.failed_steps();
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("failed: {}", failed.join(", "));
        Ok(ExitCode::FAILURE)
    }
}

fn status<T>(s: &StepReport<T>) -> String {
    match &s.reason {
        Some(r) => format!("{:?} ({r})", s.status).to_lowercase(),
        None => format!("{:?}", s.status).to_lowercase(),
    }
}

fn print_summary(r: &PassReport) {
    println!("{} ({:.0} ms)", r.table, r.ms);
    let m = r.manifests.detail.clone().unwrap_or_default();
    println!(
        "  manifests   {}: {} replaced by {} ({} dropped), {} entries",
        status(&r.manifests),
        m.manifests_replaced,
        m.manifests_created,
        m.manifests_dropped,
        m.entries
    );
    let c = r.compaction.detail.clone().unwrap_or_default();
    println!(
        "  compaction  {}: {} of {} partition(s)",
        status(&r.compaction),
        c.partitions.len(),
        c.partitions_checked
    );
    for p in &c.partitions {
        println!(
            "    partition {} {:?}: {} rows, {} data + {} delete files -> {} ({:?}{})",
            p.partition,
            p.reasons,
            p.rows,
            p.data_files_removed,
            p.delete_files_removed,
            p.data_files_added,
            p.status,
            p.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    let cp = r
        .checkpoint
        .detail
        .as_ref()
        .map(|d| serde_json::to_string(d).unwrap_or_default())
        .unwrap_or_default();
    println!("  checkpoint  {}: {cp}", status(&r.checkpoint));
    let e = r.expiry.detail.clone().unwrap_or_default();
    println!(
        "  expiry      {}: {} of {} snapshot(s) expired",
        status(&r.expiry),
        e.outcome.expired,
        e.outcome.snapshots_before
    );
    let o = r.orphans.detail.clone().unwrap_or_default();
    println!(
        "  orphans     {}: {} deleted ({} bytes) of {} listed; {} referenced, {} younger than the grace period",
        status(&r.orphans),
        o.deleted,
        o.deleted_bytes,
        o.listed,
        o.referenced,
        o.young
    );
    let a = r.archive.detail.clone().unwrap_or_default();
    println!(
        "  archive     {}: {} partition(s) rewritten, {} small files into {} ({} rows)",
        status(&r.archive),
        a.partitions,
        a.files_removed,
        a.files_added,
        a.rows
    );
    if let (Some(b), Some(a)) = (&r.before, &r.after) {
        println!(
            "  table       snapshots {} -> {}, manifests {} -> {}, data files {} -> {}, delete files {} -> {}, metadata {} -> {} bytes",
            b.snapshots,
            a.snapshots,
            b.manifests(),
            a.manifests(),
            b.data_files,
            a.data_files,
            b.delete_files,
            a.delete_files,
            b.metadata_bytes,
            a.metadata_bytes
        );
    }
}
