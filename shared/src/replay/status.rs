//! A replay's status, computed from its plan, its markers and the target table's committed
//! offsets (the table is the progress record: nothing else is written per batch).
//! Pure: [`status`] takes what was read, so it is unit tested without I/O.

use std::collections::BTreeMap;

use serde::Serialize;

use super::id::ReplayId;
use super::store::StoredReplay;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayState {
    /// Nothing committed yet.
    Planned,
    Running,
    /// Every range committed in the target table.
    Done,
    Cancelled,
    Failed,
    /// Swapped in as the live table.
    Promoted,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartitionProgress {
    pub partition: i32,
    pub from: i64,
    pub to: i64,
    /// Next offset to apply (`from` when nothing is committed).
    pub position: i64,
    /// Offsets `from..archive_to` are read from the event archive, the rest from Kafka.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive_to: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShardStatus {
    pub index: u32,
    pub state: ReplayState,
    pub events_total: i64,
    pub events_done: i64,
    pub partitions: Vec<PartitionProgress>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayStatus {
    pub replay_id: ReplayId,
    pub pipeline: String,
    pub state: ReplayState,
    pub target_table: String,
    pub events_total: i64,
    pub events_done: i64,
    /// Events applied per second since the replay was created.
    pub events_per_s: f64,
    /// Seconds left at that rate (`None` before any progress, 0 when done).
    pub eta_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub created_at_ms: i64,
    pub shards: Vec<ShardStatus>,
}

fn shard_state(done: i64, total: i64, overall: ReplayState) -> ReplayState {
    match overall {
        ReplayState::Cancelled | ReplayState::Failed | ReplayState::Promoted => overall,
        _ if done >= total => ReplayState::Done,
        _ if done > 0 => ReplayState::Running,
        _ => ReplayState::Planned,
    }
}

/// The status of `r` given the target's committed offsets (empty: no table yet) at `now_ms`.
pub fn status(r: &StoredReplay, committed: &BTreeMap<i32, i64>, now_ms: i64) -> ReplayStatus {
    let plan = &r.plan;
    let mut shards = Vec::with_capacity(plan.shards.len());
    let marker_state = if r.promoted().is_some() {
        Some(ReplayState::Promoted)
    } else if r.failed().is_some() {
        Some(ReplayState::Failed)
    } else if r.cancelled() {
        Some(ReplayState::Cancelled)
    } else {
        None
    };
    let (mut total, mut done) = (0, 0);
    for s in &plan.shards {
        let partitions: Vec<PartitionProgress> = s
            .ranges
            .iter()
            .map(|x| PartitionProgress {
                partition: x.partition,
                from: x.from,
                to: x.to,
                position: committed
                    .get(&x.partition)
                    .copied()
                    .unwrap_or(-1)
                    .clamp(x.from, x.to),
                archive_to: x.archive_to,
            })
            .collect();
        let t: i64 = s.events();
        let d: i64 = partitions.iter().map(|p| p.position - p.from).sum();
        total += t;
        done += d;
        shards.push(ShardStatus {
            index: s.index,
            state: shard_state(d, t, marker_state.unwrap_or(ReplayState::Running)),
            events_total: t,
            events_done: d,
            partitions,
        });
    }
    let state = marker_state.unwrap_or(if done >= total {
        ReplayState::Done
    } else if done > 0 {
        ReplayState::Running
    } else {
        ReplayState::Planned
    });
    let secs = ((now_ms - plan.created_at_ms).max(1) as f64) / 1e3;
    let rate = done as f64 / secs;
    let eta_s = match state {
        ReplayState::Done | ReplayState::Promoted => Some(0.0),
        _ if rate > 0.0 => Some((total - done) as f64 / rate),
        _ => None,
    };
    ReplayStatus {
        replay_id: plan.replay_id.clone(),
        pipeline: plan.pipeline.clone(),
        state,
        target_table: plan.target_table.clone(),
        events_total: total,
        events_done: done,
        events_per_s: rate,
        eta_s,
        failure: r.failed().map(str::to_owned),
        created_at_ms: plan.created_at_ms,
        shards,
    }
}
