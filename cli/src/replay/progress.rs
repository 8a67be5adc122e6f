//! A progress line per shard while a replay runs, and the summary at the end.

use std::io::Write;
use std::time::Duration;

use refold::replay::invoker::{InProcessInvoker, ShardTask};
use refold::replay::{ReplayService, ReplayStatus, ShardReport};

/// How often the status is read and drawn.
const REFRESH: Duration = Duration::from_millis(500);
/// Characters of a bar.
const BAR_WIDTH: usize = 30;

pub type Results = Vec<(ShardTask, Result<ShardReport, String>)>;

fn bar(done: i64, total: i64) -> String {
    let filled = if total <= 0 {
        BAR_WIDTH
    } else {
        ((done as f64 / total as f64) * BAR_WIDTH as f64).round() as usize
    }
    .min(BAR_WIDTH);
    format!("[{}{}]", "#".repeat(filled), "-".repeat(BAR_WIDTH - filled))
}

fn draw(s: &ReplayStatus) {
    let mut out = std::io::stdout().lock();
    for sh in &s.shards {
        let parts: Vec<String> = sh
            .partitions
            .iter()
            .map(|p| p.partition.to_string())
            .collect();
        let _ = writeln!(
            out,
            "  shard {} (partitions {}) {} {}/{} {:?}",
            sh.index,
            parts.join(","),
            bar(sh.events_done, sh.events_total),
            sh.events_done,
            sh.events_total,
            sh.state
        );
    }
    let eta = s.eta_s.map_or("?".to_owned(), |e| format!("{e:.0} s"));
    let _ = writeln!(
        out,
        "  total {}/{} events, {:.0} events/s, ETA {eta}",
        s.events_done, s.events_total, s.events_per_s
    );
}

/// Draws the progress until every shard invocation has ended; their results.
pub async fn follow(
    service: &ReplayService,
    pipeline: &str,
    id: &str,
    invoker: &InProcessInvoker,
) -> anyhow::Result<Results> {
    let wait = invoker.wait_idle();
    tokio::pin!(wait);
    loop {
        tokio::select! {
            results = &mut wait => return Ok(results),
            _ = tokio::time::sleep(REFRESH) => {
                draw(&service.status(pipeline, id).await?);
            }
        }
    }
}

pub fn print_final(s: &ReplayStatus, results: &Results) {
    draw(s);
    for (task, r) in results {
        match r {
            Ok(rep) => println!(
                "  shard {} invocation {}: {:?}, {} batches, {} records ({} folded, {} filtered, {} dead-lettered, {} already applied) in {:.1} s",
                task.shard,
                task.invocation,
                rep.outcome,
                rep.batches,
                rep.counts.received,
                rep.counts.folded,
                rep.counts.filtered,
                rep.counts.dead_lettered,
                rep.counts.already_applied,
                rep.elapsed_ms / 1e3
            ),
            Err(e) => println!(
                "  shard {} invocation {}: failed: {e}",
                task.shard, task.invocation
            ),
        }
    }
    println!(
        "replay {}: {:?}; table {}",
        s.replay_id, s.state, s.target_table
    );
    if let Some(f) = &s.failure {
        println!("  failure: {f}");
    }
}
