//! [`ReplayWorker`]: what one shard invocation does, wired from configuration: load the plan,
//! compile the pipeline, seed the start state, open the batch engine on the target table,
//! run the shard. The replay-worker Lambda and the in-process invoker both call it.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::invoker::{ShardHandler, ShardTask};
use super::plan::ReplayPlan;
use super::problem::ReplayNotFound;
use super::source::RangeSource;
use super::store::ReplayStore;
use super::worker::{ShardReport, WorkerLimits, run_shard};
use super::{start, target};
use crate::batch::{CompiledPipeline, KeyCheck};
use crate::dead_letter::DeadLetterStore;
use crate::engine::table_config;
use crate::error::Result;
use crate::pipeline::Pipeline;
use crate::table::{CatalogConfig, StateTable};

/// Where a replay's dead letters go (apart from the live pipeline's).
pub type DeadLettersFor =
    Arc<dyn Fn(&ReplayPlan) -> Result<Arc<dyn DeadLetterStore>> + Send + Sync>;

pub struct ReplayWorker {
    /// The pipeline (compiled per invocation: a compiled pipeline is neither `Clone` nor
    /// shared between threads) and its keying rule.
    pipeline: Pipeline,
    key_check: KeyCheck,
    catalog: CatalogConfig,
    store: Arc<dyn ReplayStore>,
    source: Arc<dyn RangeSource>,
    dead_letters: DeadLettersFor,
    limits: WorkerLimits,
}

impl ReplayWorker {
    pub fn new(
        cp: &CompiledPipeline,
        catalog: CatalogConfig,
        store: Arc<dyn ReplayStore>,
        source: Arc<dyn RangeSource>,
        dead_letters: DeadLettersFor,
    ) -> Self {
        Self {
            pipeline: cp.pipeline.clone(),
            key_check: cp.key_check,
            catalog,
            store,
            source,
            dead_letters,
            limits: WorkerLimits::default(),
        }
    }

    #[must_use]
    pub fn with_limits(mut self, limits: WorkerLimits) -> Self {
        self.limits = limits;
        self
    }

    pub fn store(&self) -> &Arc<dyn ReplayStore> {
        &self.store
    }

    /// Runs one invocation of `task` (see [`run_shard`]).
    pub async fn run(&self, task: &ShardTask, deadline: Instant) -> Result<ShardReport> {
        let cp = CompiledPipeline::compile(self.pipeline.clone())?.with_key_check(self.key_check);
        if task.pipeline != cp.name() {
            return Err(ReplayNotFound::error(format!("pipeline {}", task.pipeline)));
        }
        let plan = self.store.get(&task.pipeline, &task.replay_id).await?.plan;
        let target_cfg = target::target_config(&cp, self.catalog.clone(), &plan)?;
        if !matches!(plan.start, super::StartState::Empty) {
            let live = StateTable::open_or_create(table_config(&cp, self.catalog.clone())?).await?;
            start::seed_shard(&plan, task.shard, &live, target_cfg).await?;
        }
        let engine =
            target::open_engine(cp, self.catalog.clone(), &plan, (self.dead_letters)(&plan)?)
                .await?;
        run_shard(
            &plan,
            task.shard,
            &engine,
            self.source.as_ref(),
            self.store.as_ref(),
            &self.limits,
            deadline,
        )
        .await
        .map_err(|e| e.with_context(format!("replay {} shard {}", plan.replay_id, task.shard)))
    }
}

#[async_trait(?Send)]
impl ShardHandler for ReplayWorker {
    async fn handle(&self, task: &ShardTask, deadline: Instant) -> Result<ShardReport> {
        self.run(task, deadline).await
    }
}
