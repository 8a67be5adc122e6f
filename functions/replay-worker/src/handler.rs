//! One shard invocation: the Lambda context's deadline in, the shard's report out.

use std::time::{Duration, Instant};

use refold::batch::CompiledPipeline;
use refold::error::Result;
use refold::replay::invoker::handle_invocation;
use refold::replay::promote::{PromoteInput, PromoteOptions, Promoted, promote};
use refold::replay::{ShardReport, ShardTask};
use refold_aws::invoke::PromoteTask;
use serde_json::Value;

use crate::config::{Worker, replay_dead_letters};
use crate::event::WorkerEvent;

/// Handles one event: a shard invocation or a promotion; the report as JSON.
pub async fn handle_event(w: &Worker, event: &WorkerEvent, deadline: Instant) -> Result<Value> {
    let report = match event {
        WorkerEvent::Shard(task) => serde_json::to_value(handle(w, task, deadline).await?),
        WorkerEvent::Promote { promote } => {
            serde_json::to_value(handle_promotion(w, promote).await?)
        }
    };
    report.map_err(|e| {
        refold::error::Error::new(refold::error::ErrorKind::Internal, "encode the report")
            .with_source(e)
    })
}

/// Promotes a finished replay (catch up to the live table, swap it in).
pub async fn handle_promotion(w: &Worker, task: &PromoteTask) -> Result<Promoted> {
    tracing::info!(replay_id = %task.replay_id, "promotion");
    let cp = CompiledPipeline::compile(w.pipeline.clone())?.with_key_check(w.key_check);
    let store = w.handler.store();
    let stored = store.get(&task.pipeline, &task.replay_id).await?;
    let input = PromoteInput {
        cp: &cp,
        catalog: &w.catalog,
        store: store.as_ref(),
        source: w.source.as_ref(),
        dead_letters: replay_dead_letters(&stored.plan)?,
    };
    let opts = PromoteOptions {
        worker: w.limits.clone(),
        ..PromoteOptions::default()
    };
    let promoted = promote(&input, &stored, &opts).await?;
    tracing::info!(promoted = ?promoted, "promotion done");
    Ok(promoted)
}

/// The budget of an invocation whose runtime gave no usable deadline: Lambda's longest
/// timeout.
pub const UNKNOWN_DEADLINE_BUDGET_MS: u64 = 15 * 60 * 1000;

/// The deadline of an invocation whose Lambda deadline is `deadline_ms` (Unix ms), as an
/// `Instant`. A deadline already past when the invocation starts is not one Lambda gives
/// (`cargo lambda watch` sends a constant 600,000, a moment of 1970): then the invocation
/// gets [`UNKNOWN_DEADLINE_BUDGET_MS`].
pub fn deadline(deadline_ms: u64, now_ms: u64) -> Instant {
    let left_ms = match deadline_ms.checked_sub(now_ms) {
        Some(left) if left > 0 => left,
        _ => UNKNOWN_DEADLINE_BUDGET_MS,
    };
    Instant::now() + Duration::from_millis(left_ms)
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Runs `task` until done, cancelled or near `deadline` (then invokes its continuation).
pub async fn handle(w: &Worker, task: &ShardTask, deadline: Instant) -> Result<ShardReport> {
    tracing::info!(
        replay_id = %task.replay_id,
        shard = task.shard,
        invocation = task.invocation,
        "replay shard invocation"
    );
    let report = handle_invocation(
        &w.handler,
        &w.invoker,
        w.handler.store().as_ref(),
        task,
        deadline,
    )
    .await?;
    tracing::info!(report = ?report, "replay shard invocation done");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_is_relative_and_a_past_one_is_unknown() {
        let left = |d: Instant| d.saturating_duration_since(Instant::now());
        let l = left(deadline(10_000, 4_000));
        assert!(l <= Duration::from_millis(6_000) && l > Duration::from_millis(5_000));
        // The emulator's constant deadline (600,000 ms after the epoch): 15 minutes.
        let l = left(deadline(600_000, 1_796_180_400_000));
        assert!(l > Duration::from_millis(UNKNOWN_DEADLINE_BUDGET_MS - 1_000));
    }
}
