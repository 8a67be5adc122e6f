//! [`ReplayWorker`]: what one shard invocation does, wired from configuration: load the plan,
//! compile the pipeline, seed the start state, open the batch engine on the target table,
//! run the shard. The replay-worker Lambda and the in-process invoker both call it.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::archive_source::ArchiveThenKafka;
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
        let cp_archive = crate::engine::archive_config(&cp, self.catalog.clone());
        if !matches!(plan.start, super::StartState::Empty) {
            let live = StateTable::open_or_create(table_config(&cp, self.catalog.clone())?).await?;
            start::seed_shard(&plan, task.shard, &live, target_cfg).await?;
        }
        let engine =
            target::open_engine(cp, self.catalog.clone(), &plan, (self.dead_letters)(&plan)?)
                .await?;
        let source = self.source_for(&cp_archive, &plan).await?;
        run_shard(
            &plan,
            task.shard,
            &engine,
            source.as_ref(),
            self.store.as_ref(),
            &self.limits,
            deadline,
        )
        .await
        .map_err(|e| e.with_context(format!("replay {} shard {}", plan.replay_id, task.shard)))
    }
}

impl ReplayWorker {
    /// The source of the plan's ranges: Kafka, behind the event archive when the plan
    /// reads offsets Kafka no longer held from it.
    async fn source_for(
        &self,
        archive: &Option<crate::archive::ArchiveConfig>,
        plan: &ReplayPlan,
    ) -> Result<Arc<dyn RangeSource>> {
        if plan.ranges.iter().all(|r| r.archive_to.is_none()) {
            return Ok(self.source.clone());
        }
        let Some(cfg) = archive else {
            return Err(crate::error::Error::new(
                crate::error::ErrorKind::Config,
                "the plan reads from the event archive, but the pipeline keeps none now \
                 (archive: false)",
            ));
        };
        let archive = Arc::new(crate::archive::Archive::open_or_create(cfg.clone()).await?);
        Ok(
            match ArchiveThenKafka::for_plan(plan, archive, self.source.clone()) {
                Some(s) => Arc::new(s),
                None => self.source.clone(),
            },
        )
    }
}

#[async_trait(?Send)]
impl ShardHandler for ReplayWorker {
    async fn handle(&self, task: &ShardTask, deadline: Instant) -> Result<ShardReport> {
        self.run(task, deadline).await
    }
}
