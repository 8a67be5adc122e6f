//! The replay plan: everything a worker needs, fixed at planning time and stored durably
//! (see [`super::store`]): the request as given, the target table and group, the start
//! state, the offset range `[from, to)` of every partition, and the shards.
//!
//! Resolution per partition (watermarks `low..high` at planning time):
//! - `from`: `earliest` = low; an offset or a map entry as given; a time = the first offset at
//!   or after it (past the end: high); `latest_checkpoint` = the checkpoint's offsets (a
//!   partition it has none for: low).
//! - `to`: `to_timestamp` T = the first offset after T (records at T are included; past the
//!   end: high); no T: high. Cut by offset, so the range is exact and the same for every
//!   worker and every re-invocation (a Kafka time cut in the worker could differ with
//!   out-of-order producer times).
//! - `earliest` is the event archive's first offset when Kafka no longer holds it.
//! - `from` past `to` gives an empty range. `from` below low reads `[from, low)` from the
//!   event archive (`archive_to` = low: no gap, no overlap with Kafka's part) when the
//!   archive holds all of it, else fails "beyond retention" saying what the archive holds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::id::ReplayId;
use super::problem::{ReplayConflict, RequestError};
use super::request::{FromOffset, ReplayRequest};
use super::resolve::{OffsetResolver, Watermarks};
use super::shard::shard;
pub use super::shard::{PartitionRange, Shard};
use crate::batch::CompiledPipeline;
use crate::error::{Error, Result};
use crate::table::TableIdentity;
use crate::table::as_of::Checkpoint;

/// Where the target table starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StartState {
    /// An empty table.
    Empty,
    /// The rows of the live table's checkpoint tag `name` (snapshot `snapshot_id`), whose
    /// offsets are where the ranges start.
    Checkpoint {
        name: String,
        snapshot_id: i64,
        offsets: BTreeMap<i32, i64>,
    },
}

/// A stored replay plan (`plan.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayPlan {
    pub replay_id: ReplayId,
    pub pipeline: String,
    pub topic: String,
    /// The live table, `namespace.name`.
    pub source_table: String,
    pub live_consumer_group: String,
    /// The target table, `namespace.name` (never the live one).
    pub target_table: String,
    pub target_consumer_group: String,
    /// The request, normalized.
    pub request: serde_json::Value,
    pub to_timestamp_ms: Option<i64>,
    pub start: StartState,
    /// Every partition of the topic, sorted.
    pub ranges: Vec<PartitionRange>,
    pub shards: Vec<Shard>,
    pub created_at_ms: i64,
}

impl ReplayPlan {
    pub fn target_identity(&self) -> Result<TableIdentity> {
        TableIdentity::parse(&self.target_table)
    }

    pub fn source_identity(&self) -> Result<TableIdentity> {
        TableIdentity::parse(&self.source_table)
    }

    pub fn shard(&self, index: u32) -> Result<&Shard> {
        self.shards
            .iter()
            .find(|s| s.index == index)
            .ok_or_else(|| {
                RequestError::new(
                    "shard",
                    format!(
                        "replay {} has shards 0..{}, not {index}",
                        self.replay_id,
                        self.shards.len()
                    ),
                )
                .into_error()
            })
    }

    /// Records in all ranges.
    pub fn events(&self) -> i64 {
        self.ranges.iter().map(PartitionRange::len).sum()
    }
}

/// What a plan needs to know besides the request: the pipeline's names, the checkpoint
/// (for `latest_checkpoint`), the id and the time.
#[derive(Debug, Clone)]
pub struct PlanContext {
    pub pipeline: String,
    pub topic: String,
    pub live_table: TableIdentity,
    pub live_consumer_group: String,
    /// The live table's newest checkpoint, if it has one.
    pub latest_checkpoint: Option<Checkpoint>,
    /// What the pipeline's event archive holds (None: the pipeline keeps none).
    pub archive: Option<ArchiveCoverage>,
    pub replay_id: ReplayId,
    pub now_ms: i64,
}

impl PlanContext {
    /// Names from the pipeline; id and time from now; no checkpoint (set it for
    /// `latest_checkpoint`).
    pub fn of(cp: &CompiledPipeline) -> Self {
        let p = &cp.pipeline;
        let t = p.transformation();
        let source = p.source_of(t);
        let sink = &p.sink_of(t).table;
        let now = chrono::Utc::now();
        Self {
            pipeline: cp.name().to_owned(),
            topic: source.topic.clone(),
            live_table: TableIdentity {
                namespace: sink.namespace.clone(),
                name: sink.name.clone(),
            },
            live_consumer_group: source.consumer_group.clone(),
            latest_checkpoint: None,
            archive: None,
            replay_id: ReplayId::new(now),
            now_ms: now.timestamp_millis(),
        }
    }
}

/// Per partition, the offsets the event archive holds: from its first archived offset up
/// to its committed (next) offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveCoverage {
    pub first: BTreeMap<i32, i64>,
    pub next: BTreeMap<i32, i64>,
}

impl ArchiveCoverage {
    /// Whether the archive holds every valid envelope of `[from, to)` of `partition`.
    fn covers(&self, partition: i32, from: i64, to: i64) -> bool {
        let first = self.first.get(&partition).copied();
        let next = self.next.get(&partition).copied().unwrap_or(0);
        first.is_some_and(|f| f <= from) && next >= to
    }

    fn describe(&self, partition: i32) -> String {
        match (self.first.get(&partition), self.next.get(&partition)) {
            (Some(f), Some(n)) => format!("the event archive holds offsets {f}..{n}"),
            _ => "the event archive holds none of it".to_owned(),
        }
    }
}

/// The error for a start offset neither Kafka nor the event archive holds.
pub fn beyond_retention(
    topic: &str,
    partition: i32,
    asked: i64,
    w: Watermarks,
    archive: Option<&ArchiveCoverage>,
) -> Error {
    let archived = match archive {
        Some(a) => a.describe(partition),
        None => "the pipeline keeps no event archive (archive: false)".to_owned(),
    };
    RequestError::new(
        "from_offset",
        format!(
            "topic {topic} partition {partition}: offset {asked} is beyond retention (the log \
             starts at {} now) and {archived}",
            w.low
        ),
    )
    .into_error()
}

fn target_table(ctx: &PlanContext, req: &ReplayRequest) -> Result<TableIdentity> {
    let name = match &req.target {
        Some(n) => n.clone(),
        None => format!(
            "{}__replay_{}",
            ctx.live_table.name,
            ctx.replay_id.table_suffix()
        ),
    };
    if name == ctx.live_table.name {
        return Err(RequestError::new(
            "target",
            format!("`{name}` is the live table: a replay never writes the live table"),
        )
        .into_error());
    }
    Ok(TableIdentity {
        namespace: ctx.live_table.namespace.clone(),
        name,
    })
}

fn check_names(ctx: &PlanContext, req: &ReplayRequest, partitions: usize) -> Result<()> {
    if req.target_consumer_group == ctx.live_consumer_group {
        return Err(RequestError::new(
            "target_consumer_group",
            format!(
                "`{}` is the live consumer group: a replay needs its own",
                req.target_consumer_group
            ),
        )
        .into_error());
    }
    if req.parallel_consumers as usize > partitions {
        return Err(RequestError::new(
            "parallel_consumers",
            format!(
                "{} exceeds the {partitions} partition(s) of topic {} (a partition is never split)",
                req.parallel_consumers, ctx.topic
            ),
        )
        .into_error());
    }
    Ok(())
}

/// Plans a replay: resolves every partition's range, shards them, names the target.
pub async fn plan_replay(
    ctx: &PlanContext,
    req: &ReplayRequest,
    resolver: &dyn OffsetResolver,
) -> Result<ReplayPlan> {
    let partitions = resolver.partitions(&ctx.topic).await?;
    check_names(ctx, req, partitions.len())?;
    let target = target_table(ctx, req)?;
    let start = start_state(ctx, req)?;
    let mut ranges = Vec::with_capacity(partitions.len());
    for p in &partitions {
        ranges.push(resolve_range(ctx, req, &start, resolver, *p).await?);
    }
    check_map_partitions(req, &partitions)?;
    Ok(ReplayPlan {
        replay_id: ctx.replay_id.clone(),
        pipeline: ctx.pipeline.clone(),
        topic: ctx.topic.clone(),
        source_table: ctx.live_table.to_string(),
        live_consumer_group: ctx.live_consumer_group.clone(),
        target_table: target.to_string(),
        target_consumer_group: req.target_consumer_group.clone(),
        request: req.to_json(),
        to_timestamp_ms: req.to_timestamp_ms,
        start,
        shards: shard(&ranges, req.parallel_consumers),
        ranges,
        created_at_ms: ctx.now_ms,
    })
}

fn start_state(ctx: &PlanContext, req: &ReplayRequest) -> Result<StartState> {
    if req.from_offset != FromOffset::LatestCheckpoint {
        return Ok(StartState::Empty);
    }
    match &ctx.latest_checkpoint {
        Some(c) => Ok(StartState::Checkpoint {
            name: c.name.clone(),
            snapshot_id: c.snapshot_id,
            offsets: c.offsets.clone(),
        }),
        None => Err(RequestError::new(
            "from_offset",
            format!(
                "latest_checkpoint: table {} has no checkpoint yet (the snapshot-compactor takes \
                 them; `refold compact --now`)",
                ctx.live_table
            ),
        )
        .into_error()),
    }
}

/// A map must name exactly the topic's partitions.
fn check_map_partitions(req: &ReplayRequest, partitions: &[i32]) -> Result<()> {
    let FromOffset::Partitions(m) = &req.from_offset else {
        return Ok(());
    };
    let missing: Vec<i32> = partitions
        .iter()
        .copied()
        .filter(|p| !m.contains_key(p))
        .collect();
    let unknown: Vec<i32> = m
        .keys()
        .copied()
        .filter(|p| !partitions.contains(p))
        .collect();
    if missing.is_empty() && unknown.is_empty() {
        return Ok(());
    }
    Err(RequestError::new(
        "from_offset",
        format!(
            "the map must name every partition of the topic ({partitions:?}): missing \
             {missing:?}, unknown {unknown:?}"
        ),
    )
    .into_error())
}

async fn resolve_range(
    ctx: &PlanContext,
    req: &ReplayRequest,
    start: &StartState,
    resolver: &dyn OffsetResolver,
    p: i32,
) -> Result<PartitionRange> {
    let topic = &ctx.topic;
    let w = resolver.watermarks(topic, p).await?;
    // The first offset anything holds: the archive's first when Kafka no longer has it.
    let earliest = match ctx.archive.as_ref().and_then(|a| a.first.get(&p)) {
        Some(&a) if a < w.low => a,
        _ => w.low,
    };
    let from = match (&req.from_offset, start) {
        (_, StartState::Checkpoint { offsets, .. }) => offsets.get(&p).copied().unwrap_or(earliest),
        (FromOffset::Earliest, _) | (FromOffset::LatestCheckpoint, _) => earliest,
        (FromOffset::Offset(o), _) => *o,
        (FromOffset::Partitions(m), _) => m.get(&p).copied().unwrap_or(w.low),
        (FromOffset::TimeMs(t), _) => resolver
            .offset_for_time(topic, p, *t)
            .await?
            .unwrap_or(w.high),
    };
    let to = match req.to_timestamp_ms {
        Some(t) => resolver
            .offset_for_time(topic, p, t.saturating_add(1))
            .await?
            .unwrap_or(w.high),
        None => w.high,
    }
    .clamp(0, w.high);
    check_time_cuts(ctx, req, p, w, from, to)?;
    let mut archive_to = None;
    if from < w.low && from < to {
        let split = w.low.min(to);
        match &ctx.archive {
            Some(a) if a.covers(p, from, split) => archive_to = Some(split),
            a => return Err(beyond_retention(topic, p, from, w, a.as_ref())),
        }
    }
    Ok(PartitionRange {
        partition: p,
        from: from.min(to),
        to,
        archive_to,
    })
}

/// Times resolve through Kafka only: a time before the log start resolves to the log
/// start, which would silently skip (a `from`) or take (a `to_timestamp`) the archived
/// part. Refused when the archive holds offsets below the log start, until times resolve
/// through the archive's `kafka_timestamp` too.
fn check_time_cuts(
    ctx: &PlanContext,
    req: &ReplayRequest,
    p: i32,
    w: Watermarks,
    from: i64,
    to: i64,
) -> Result<()> {
    let archived = ctx
        .archive
        .as_ref()
        .and_then(|a| a.first.get(&p))
        .is_some_and(|&f| f < w.low);
    if !archived {
        return Ok(());
    }
    let field = match (&req.from_offset, req.to_timestamp_ms) {
        (FromOffset::TimeMs(_), _) if from <= w.low => "from_offset",
        (_, Some(_)) if to <= w.low => "to_timestamp",
        _ => return Ok(()),
    };
    Err(RequestError::new(
        field,
        format!(
            "partition {p}: the time falls at or before Kafka's log start (offset {}), in \
             the part only the event archive holds; times are resolved through Kafka only: \
             give offsets there (from_offset as a number or a per-partition map)",
            w.low
        ),
    )
    .into_error())
}

/// A conflict when another replay still runs into `target` (see [`super::store`]).
pub fn target_conflict(target: &str, holder: &ReplayId) -> Error {
    ReplayConflict {
        target_table: target.to_owned(),
        holder: holder.to_string(),
        reason: format!("replay {holder} is still running into it"),
    }
    .error()
}
