//! The start state of a `latest_checkpoint` replay: the checkpoint's rows copied into the
//! target table, one partition at a time, each partition by the shard that owns it and before
//! that shard folds anything, with the checkpoint's offset of that partition in the same
//! commit. The rows are rewritten into the target's own data files (nothing shared with the
//! live table, so the live table's orphan sweep and expiry cannot remove a file the replay
//! table reads). A partition whose offset the target has committed is seeded already: a
//! re-invoked shard skips it, so seeding lands once.

use std::collections::BTreeMap;

use super::plan::{ReplayPlan, StartState};
use crate::error::{Error, ErrorKind, Result};
use crate::table::{FoldedBatch, StateRow, StateTable, TableConfig, TableLimits};

/// Rows one partition's seed may hold (they are read into memory, written in one commit).
pub const MAX_SEED_ROWS_PER_PARTITION: usize = 5_000_000;

/// Seeds the partitions of `shard` from the checkpoint (no-op for an empty start).
pub async fn seed_shard(
    plan: &ReplayPlan,
    shard: u32,
    live: &StateTable,
    target_cfg: TableConfig,
) -> Result<usize> {
    let StartState::Checkpoint {
        name,
        snapshot_id,
        offsets,
    } = &plan.start
    else {
        return Ok(0);
    };
    let ctx = || format!("seed replay {} from checkpoint {name}", plan.replay_id);
    let limits = TableLimits {
        max_rows_per_batch: MAX_SEED_ROWS_PER_PARTITION,
        max_keys_per_batch: MAX_SEED_ROWS_PER_PARTITION,
        ..TableLimits::default()
    };
    let target = StateTable::open_or_create(target_cfg)
        .await?
        .with_limits(limits);
    let committed = target.committed_offsets().await?;
    let parts: Vec<i32> = plan
        .shard(shard)?
        .ranges
        .iter()
        .map(|r| r.partition)
        .filter(|p| offsets.contains_key(p) && !committed.contains_key(p))
        .collect();
    if parts.is_empty() {
        return Ok(0);
    }
    let rows = live
        .rows_at(*snapshot_id, None, None)
        .await
        .map_err(|e| e.with_context(ctx()))?;
    let mut by_part: BTreeMap<i32, Vec<StateRow>> = BTreeMap::new();
    for r in rows
        .into_iter()
        .filter(|r| parts.contains(&r.source_partition))
    {
        by_part.entry(r.source_partition).or_default().push(r);
    }
    let mut n = 0;
    for p in parts {
        let rows = by_part.remove(&p).unwrap_or_default();
        let next = offsets.get(&p).copied().ok_or_else(|| {
            Error::new(
                ErrorKind::Internal,
                format!("checkpoint offset of partition {p}"),
            )
        })?;
        n += seed_partition(&target, p, rows, next)
            .await
            .map_err(|e| e.with_context(ctx()))?;
    }
    Ok(n)
}

async fn seed_partition(
    target: &StateTable,
    p: i32,
    rows: Vec<StateRow>,
    next: i64,
) -> Result<usize> {
    let keys: Vec<(String, String)> = rows.iter().map(StateRow::identity).collect();
    let n = rows.len();
    let mut rows = Some(rows);
    target
        .merge_batch(p, &keys, async |committed, _priors| {
            Ok(FoldedBatch {
                // Called again only after a conflict; the target has one writer per partition.
                rows: if committed < next {
                    rows.take().unwrap_or_default()
                } else {
                    Vec::new()
                },
                next_offset: next.max(committed),
                extra_summary: BTreeMap::from([(
                    "refold.replay-seed".to_owned(),
                    "checkpoint".to_owned(),
                )]),
            })
        })
        .await?;
    Ok(n)
}
