//! `refold checkpoints <pipeline.yaml> --warehouse DIR [--json]`: the checkpoints of the
//! pipeline's state table, oldest first, with time, snapshot and offsets.

use std::path::Path;
use std::process::ExitCode;

use refold::compactor::policy::checkpoint_time_ms;
use refold::table::as_of::fmt_ms;

pub async fn run(pipeline: &Path, warehouse: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let (_, table) = crate::state::open(pipeline, warehouse).await?;
    let checkpoints = table.checkpoints().await?;
    for c in &checkpoints {
        let time_ms = checkpoint_time_ms(&c.name).unwrap_or(c.snapshot_time_ms);
        if json {
            let line = serde_json::json!({
                "name": c.name,
                "time": fmt_ms(time_ms),
                "snapshot_id": c.snapshot_id,
                "snapshot_time": fmt_ms(c.snapshot_time_ms),
                "offsets": c.offsets,
            });
            println!("{line}");
        } else {
            println!(
                "{}  {}  snapshot {} ({})  offsets {}",
                c.name,
                fmt_ms(time_ms),
                c.snapshot_id,
                fmt_ms(c.snapshot_time_ms),
                serde_json::json!(c.offsets)
            );
        }
    }
    eprintln!(
        "{} checkpoint{}",
        checkpoints.len(),
        if checkpoints.len() == 1 { "" } else { "s" }
    );
    Ok(ExitCode::SUCCESS)
}
