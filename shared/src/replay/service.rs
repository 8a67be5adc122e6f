//! [`ReplayService`]: the replay operations an API or a CLI calls, over the ports
//! (store, offset resolver, invoker) and the catalog. Each answers a value to serialize or an
//! error [`super::Problem::of`] maps to 400/404/409/500.

use std::sync::Arc;

use serde::Serialize;

use super::id::ReplayId;
use super::invoker::{ShardInvoker, ShardTask};
use super::plan::{ArchiveCoverage, PlanContext, ReplayPlan, Shard, plan_replay};
use super::problem::{ReplayConflict, ReplayNotFound};
use super::request::{FromOffset, ReplayRequest};
use super::resolve::OffsetResolver;
use super::status::{ReplayStatus, status};
use super::store::{Marker, ReplayStore, StoredReplay};
use super::target;
use crate::batch::CompiledPipeline;
use crate::engine::table_config;
use crate::error::Result;
use crate::table::{CatalogConfig, StateTable};

/// What a started replay answers (the API's 202 body, with its `status_url`).
#[derive(Debug, Clone, Serialize)]
pub struct Started {
    pub replay_id: ReplayId,
    pub target_table: String,
    pub shards: Vec<Shard>,
}

pub struct ReplayService {
    cp: CompiledPipeline,
    catalog: CatalogConfig,
    store: Arc<dyn ReplayStore>,
    resolver: Arc<dyn OffsetResolver>,
    invoker: Arc<dyn ShardInvoker>,
}

impl ReplayService {
    pub fn new(
        cp: CompiledPipeline,
        catalog: CatalogConfig,
        store: Arc<dyn ReplayStore>,
        resolver: Arc<dyn OffsetResolver>,
        invoker: Arc<dyn ShardInvoker>,
    ) -> Self {
        Self {
            cp,
            catalog,
            store,
            resolver,
            invoker,
        }
    }

    pub fn pipeline(&self) -> &CompiledPipeline {
        &self.cp
    }

    pub fn catalog(&self) -> &CatalogConfig {
        &self.catalog
    }

    pub fn store(&self) -> &Arc<dyn ReplayStore> {
        &self.store
    }

    fn check_pipeline(&self, pipeline_id: &str) -> Result<()> {
        if pipeline_id == self.cp.name() {
            Ok(())
        } else {
            Err(ReplayNotFound::error(format!(
                "pipeline `{pipeline_id:.64}`"
            )))
        }
    }

    async fn live_table(&self) -> Result<StateTable> {
        StateTable::open_or_create(table_config(&self.cp, self.catalog.clone())?).await
    }

    /// What the pipeline's event archive holds (None: it keeps none).
    async fn archive_coverage(&self) -> Result<Option<ArchiveCoverage>> {
        let Some(cfg) = crate::engine::archive_config(&self.cp, self.catalog.clone()) else {
            return Ok(None);
        };
        let archive = crate::archive::Archive::open_or_create(cfg).await?;
        Ok(Some(ArchiveCoverage {
            first: archive.first_offsets().await?,
            next: archive.committed_offsets().await?,
        }))
    }

    /// Validates, plans and stores a replay without starting it.
    pub async fn plan(&self, pipeline_id: &str, body: &[u8]) -> Result<ReplayPlan> {
        self.check_pipeline(pipeline_id)?;
        let req = ReplayRequest::parse(body).map_err(|e| e.into_error())?;
        let mut ctx = PlanContext::of(&self.cp);
        if req.from_offset == FromOffset::LatestCheckpoint {
            ctx.latest_checkpoint = self.live_table().await?.checkpoints().await?.pop();
        }
        ctx.archive = self.archive_coverage().await?;
        let plan = plan_replay(&ctx, &req, self.resolver.as_ref()).await?;
        let cfg = target::target_config(&self.cp, self.catalog.clone(), &plan)?;
        if target::table_exists(&cfg).await? {
            return Err(ReplayConflict {
                target_table: plan.target_table.clone(),
                holder: String::new(),
                reason: "the table exists already: name another target, or drop it".into(),
            }
            .error());
        }
        self.store.create(&plan).await?;
        Ok(plan)
    }

    /// Plans, stores and starts a replay: one invocation per shard, all at once.
    pub async fn start(&self, pipeline_id: &str, body: &[u8]) -> Result<Started> {
        let plan = self.plan(pipeline_id, body).await?;
        let invokes = plan.shards.iter().map(|s| {
            self.invoker
                .invoke(ShardTask::first(&plan.pipeline, &plan.replay_id, s.index))
        });
        for r in futures::future::join_all(invokes).await {
            r?;
        }
        Ok(Started {
            replay_id: plan.replay_id.clone(),
            target_table: plan.target_table.clone(),
            shards: plan.shards.clone(),
        })
    }

    pub async fn get(&self, pipeline_id: &str, replay_id: &str) -> Result<StoredReplay> {
        self.check_pipeline(pipeline_id)?;
        let id = ReplayId::parse(replay_id)?;
        self.store.get(pipeline_id, &id).await
    }

    async fn status_of(&self, r: &StoredReplay) -> Result<ReplayStatus> {
        // A promoted replay's table is the live table now; its own entry is retired.
        let committed = if r.promoted().is_some() {
            Default::default()
        } else {
            let cfg = target::target_config(&self.cp, self.catalog.clone(), &r.plan)?;
            match target::open_existing(cfg).await? {
                Some(t) => t.committed_offsets().await?,
                None => Default::default(),
            }
        };
        Ok(status(r, &committed, chrono::Utc::now().timestamp_millis()))
    }

    /// State and per-shard progress, from the target table's committed offsets.
    pub async fn status(&self, pipeline_id: &str, replay_id: &str) -> Result<ReplayStatus> {
        let r = self.get(pipeline_id, replay_id).await?;
        self.status_of(&r).await
    }

    /// Every replay of the pipeline, oldest first, with its status.
    pub async fn list(&self, pipeline_id: &str) -> Result<Vec<ReplayStatus>> {
        self.check_pipeline(pipeline_id)?;
        let mut out = Vec::new();
        for r in self.store.list(pipeline_id).await? {
            out.push(self.status_of(&r).await?);
        }
        Ok(out)
    }

    /// Cancels a replay: its workers stop before their next batch.
    pub async fn cancel(&self, pipeline_id: &str, replay_id: &str) -> Result<ReplayStatus> {
        let r = self.get(pipeline_id, replay_id).await?;
        if r.promoted().is_none() {
            let at_ms = chrono::Utc::now().timestamp_millis();
            self.store
                .mark(pipeline_id, &r.plan.replay_id, Marker::Cancelled { at_ms })
                .await?;
        }
        self.status(pipeline_id, replay_id).await
    }
}
