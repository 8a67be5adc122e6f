//! Promotion: the replay table becomes the live table, while live traffic keeps flowing.
//!
//! 1. Catch up: run the worker over each partition's `[replay committed, live committed)`
//!    (the live table's offsets under the live group, read from one loaded metadata `L`).
//! 2. Build new metadata from the replay table's current metadata: the offsets property
//!    re-keyed from the replay group to the live group (`refold.offsets.<topic>/<group>`;
//!    the current snapshot's summary carries only the replay group's key, so the read rule
//!    falls through to the property) and `refold.owner` = the live `<topic>/<group>`. It is
//!    written next to the replay table's metadata (the table's location stays the replay
//!    table's folder: its files are the live table's files from now on).
//! 3. Compare-and-set the live table's catalog pointer from exactly `L` to it. A live
//!    fold-batch commit since `L` makes it lose: catch up again and retry (bounded).
//! 4. Register `L` as `<table>__before_<replay id>` (the old live table, kept until the user
//!    drops it), and mark the replay table's own catalog entry retired: its owner becomes
//!    `promoted:<live table>` (no refold writer opens it again) and `refold.promoted-to`
//!    names the live table. The entry is kept, not removed: `CatalogSwap` has no drop, and
//!    its files now belong to the live table (whose maintenance may delete some): drop the
//!    entry without purging files.
//!
//! A warm fold-batch then loses its next compare-and-set, reloads, finds the swapped-in
//! metadata (same schema and spec ids), reads its group's offsets from the property, and
//! skips what the replay applied: no gap, nothing applied twice.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use iceberg::MetadataLocation;
use serde::Serialize;

use super::plan::{PartitionRange, ReplayPlan, Shard};
use super::problem::ReplayConflict;
use super::source::RangeSource;
use super::status::ReplayState;
use super::store::{Marker, ReplayStore, StoredReplay};
use super::worker::{ShardOutcome, WorkerLimits, now_ms, run_shard};
use super::{status, target};
use crate::batch::CompiledPipeline;
use crate::dead_letter::DeadLetterStore;
use crate::engine::{BatchProcessor, table_config};
use crate::error::{Error, ErrorKind, Result};
use crate::table::commit::commit_properties;
use crate::table::{
    CatalogConfig, Loaded, OWNER_PROPERTY, StateTable, SwapRequest, TableIdentity, catalog, offsets,
};

/// A test hook run before each compare-and-set (with the attempt number, 1 = first).
pub type BeforeSwapHook = Arc<dyn Fn(u32) -> BoxFuture<'static, ()> + Send + Sync>;

/// Table property on a retired replay table: the live table it became.
pub const PROMOTED_TO_PROPERTY: &str = "refold.promoted-to";

#[derive(Clone)]
pub struct PromoteOptions {
    /// Catch-up-and-swap rounds before giving up (live commits keep winning).
    pub max_attempts: u32,
    /// Wall time one catch-up may take.
    pub catch_up_budget: Duration,
    pub worker: WorkerLimits,
    #[doc(hidden)]
    pub before_swap: Option<BeforeSwapHook>,
}

impl Default for PromoteOptions {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            catch_up_budget: Duration::from_secs(600),
            worker: WorkerLimits::default(),
            before_swap: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Promoted {
    pub live_table: String,
    /// The old live table, registered under this name.
    pub previous_table: String,
    pub attempts: u32,
    /// The live group's offsets the replay caught up to (the swapped-in table's offsets are
    /// these or further).
    pub live_offsets: BTreeMap<i32, i64>,
}

/// Everything promotion works on.
pub struct PromoteInput<'a> {
    pub cp: &'a CompiledPipeline,
    pub catalog: &'a CatalogConfig,
    pub store: &'a dyn ReplayStore,
    pub source: &'a dyn RangeSource,
    pub dead_letters: Arc<dyn DeadLetterStore>,
}

fn refuse(r: &StoredReplay, why: &str) -> Error {
    ReplayConflict {
        target_table: r.plan.target_table.clone(),
        holder: r.plan.replay_id.to_string(),
        reason: format!("cannot promote replay {}: {why}", r.plan.replay_id),
    }
    .error()
}

/// Promotes a finished replay; see the module docs.
pub async fn promote(
    input: &PromoteInput<'_>,
    r: &StoredReplay,
    opts: &PromoteOptions,
) -> Result<Promoted> {
    let plan = &r.plan;
    let cp =
        CompiledPipeline::compile(input.cp.pipeline.clone())?.with_key_check(input.cp.key_check);
    let live = StateTable::open_or_create(table_config(&cp, input.catalog.clone())?).await?;
    let engine =
        target::open_engine(cp, input.catalog.clone(), plan, input.dead_letters.clone()).await?;
    let committed = engine.table().committed_offsets().await?;
    let st = status::status(r, &committed, now_ms());
    match st.state {
        ReplayState::Done => {}
        ReplayState::Promoted => return Err(refuse(r, "it was promoted already")),
        other => return Err(refuse(r, &format!("it is {other:?}, not done"))),
    }
    let (cat, io) = catalog::connect(input.catalog).await?;
    let live_ident = live.config().table.ident()?;
    for attempt in 1..=opts.max_attempts {
        let base = live.load().await?;
        let live_offsets = offsets::read(
            &base.metadata,
            &plan.topic,
            &plan.live_consumer_group,
            live.limits().max_offset_history_snapshots,
        )?;
        catch_up(input, plan, &engine, &live_offsets, opts).await?;
        let tgt = engine.table().load().await?;
        let (new_md, new_loc) = swapped_metadata(plan, &tgt)?;
        new_md
            .write_to(&io, &new_loc)
            .await
            .map_err(|e| Error::new(ErrorKind::Io, format!("write {new_loc}")).with_source(e))?;
        if let Some(h) = &opts.before_swap {
            h(attempt).await;
        }
        let won = cat
            .swap(SwapRequest {
                ident: &live_ident,
                base_location: &base.location,
                new_location: &new_loc.to_string(),
                new_metadata: &new_md,
                requirements: vec![],
                updates: vec![],
            })
            .await?;
        if won {
            let previous = finish(input, plan, &base, &tgt, engine.table()).await?;
            return Ok(Promoted {
                live_table: plan.source_table.clone(),
                previous_table: previous,
                attempts: attempt,
                live_offsets,
            });
        }
        tracing::info!(
            attempt,
            "promotion lost to a live commit; catching up again"
        );
    }
    Err(Error::new(
        ErrorKind::CommitConflict,
        format!(
            "promotion of replay {}: live commits won {} times; try again",
            plan.replay_id, opts.max_attempts
        ),
    ))
}

/// Runs the worker over `[replay committed, live committed)` of every partition.
async fn catch_up(
    input: &PromoteInput<'_>,
    plan: &ReplayPlan,
    engine: &BatchProcessor,
    live_offsets: &BTreeMap<i32, i64>,
    opts: &PromoteOptions,
) -> Result<()> {
    let ranges: Vec<PartitionRange> = plan
        .ranges
        .iter()
        .map(|r| PartitionRange {
            partition: r.partition,
            from: r.from,
            to: live_offsets
                .get(&r.partition)
                .copied()
                .unwrap_or(r.to)
                .max(r.to),
            archive_to: r.archive_to,
        })
        .collect();
    let catch = ReplayPlan {
        shards: vec![Shard {
            index: 0,
            ranges: ranges.clone(),
        }],
        ranges,
        ..plan.clone()
    };
    let deadline = Instant::now() + opts.catch_up_budget;
    let mut limits = opts.worker.clone();
    limits.deadline_margin_ms = 0;
    let rep = run_shard(
        &catch,
        0,
        engine,
        input.source,
        input.store,
        &limits,
        deadline,
    )
    .await?;
    if rep.outcome != ShardOutcome::Done {
        return Err(Error::new(
            ErrorKind::Io,
            format!("promotion catch-up ended {:?}, not done", rep.outcome),
        ));
    }
    Ok(())
}

/// The replay table's metadata with the live group's offsets key and owner; and where it goes.
fn swapped_metadata(
    plan: &ReplayPlan,
    tgt: &Loaded,
) -> Result<(iceberg::spec::TableMetadata, MetadataLocation)> {
    let md = tgt.metadata.as_ref();
    let from_key = offsets::key(&plan.topic, &plan.target_consumer_group);
    let to_key = offsets::key(&plan.topic, &plan.live_consumer_group);
    let value = md
        .current_snapshot()
        .and_then(|s| s.summary().additional_properties.get(&from_key))
        .or_else(|| md.properties().get(&from_key))
        .cloned()
        .unwrap_or_else(|| "{}".to_owned());
    let props = HashMap::from([
        (to_key, value),
        (
            OWNER_PROPERTY.to_owned(),
            format!("{}/{}", plan.topic, plan.live_consumer_group),
        ),
    ]);
    let ie = |what: &str| {
        let what = what.to_owned();
        move |e: iceberg::Error| Error::new(ErrorKind::Internal, what).with_source(e)
    };
    let built = md
        .clone()
        .into_builder(Some(tgt.location.clone()))
        .remove_properties(&[from_key])
        .map_err(ie("remove the replay group's offsets"))?
        .set_properties(props)
        .map_err(ie("set the live group's offsets and owner"))?
        .build()
        .map_err(ie("build the promoted metadata"))?;
    let loc = MetadataLocation::from_str(&tgt.location)
        .map_err(ie("parse the replay table's metadata location"))?
        .with_next_version()
        .with_new_metadata(&built.metadata);
    Ok((built.metadata, loc))
}

/// After the swap: the old live table under its new name, the replay entry retired, the
/// replay marked promoted. Returns the old live table's name.
async fn finish(
    input: &PromoteInput<'_>,
    plan: &ReplayPlan,
    old_live: &Loaded,
    tgt: &Loaded,
    target_table: &StateTable,
) -> Result<String> {
    let live_id = plan.source_identity()?;
    let before = TableIdentity {
        namespace: live_id.namespace.clone(),
        name: format!("{}__before_{}", live_id.name, plan.replay_id.table_suffix()),
    };
    let (cat, io) = catalog::connect(input.catalog).await?;
    cat.register(&before.ident()?, &old_live.location).await?;
    let retire = HashMap::from([
        (
            OWNER_PROPERTY.to_owned(),
            format!("promoted:{}", plan.source_table),
        ),
        (PROMOTED_TO_PROPERTY.to_owned(), plan.source_table.clone()),
    ]);
    let ident = target_table.config().table.ident()?;
    if let Err(e) = commit_properties(&io, cat.as_ref(), &ident, tgt, retire).await {
        tracing::warn!(error = %e, "could not mark the replay table retired");
    }
    let marker = Marker::Promoted {
        at_ms: now_ms(),
        previous_table: before.to_string(),
    };
    input
        .store
        .mark(&plan.pipeline, &plan.replay_id, marker)
        .await?;
    Ok(before.to_string())
}
