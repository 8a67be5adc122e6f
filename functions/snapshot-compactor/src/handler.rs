//! The handler: one schedule event in, one maintenance pass, the report out (and as one JSON
//! log line and one CloudWatch EMF line). A pass whose steps all ran answers the report; one
//! with a failed step answers an error naming the steps (Lambda counts it; EventBridge's
//! retry runs an idempotent pass again), after logging the same report.

use std::time::Instant;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use refold::batch::CompiledPipeline;
use refold::compactor::{self, MaintenancePolicy, PassOptions, PassReport};
use refold::engine::config;
use refold::error::{Error, ErrorKind, Result};
use refold::table::{CatalogConfig, StateTable};
use serde_json::Value;

use crate::schedule;

/// Built once per container (pipeline compiled, table opened), shared by every invocation.
pub struct SnapshotCompactor {
    pipeline: String,
    policy: MaintenancePolicy,
    table: StateTable,
    /// The pipeline's event archive (None: `archive: false`).
    archive: Option<refold::archive::Archive>,
    emit_metrics: bool,
}

impl SnapshotCompactor {
    /// The pipeline's state table in `catalog`.
    pub async fn open(cp: CompiledPipeline, catalog: CatalogConfig) -> Result<Self> {
        let archive = compactor::open_archive(&cp, catalog.clone()).await?;
        let table = compactor::open_table(&cp, catalog).await?;
        Ok(Self {
            pipeline: cp.name().to_string(),
            policy: MaintenancePolicy::of(&cp.pipeline),
            table,
            archive,
            emit_metrics: true,
        })
    }

    /// Pipeline and catalog from the environment (`refold::engine::config`; the catalog
    /// `REFOLD_CATALOG` names, `glue` or `sql`, through `refold_aws::catalog_from_env`).
    pub async fn from_env() -> Result<Self> {
        let cp = config::pipeline_from_env()?;
        Self::open(cp, refold_aws::catalog_from_env().await?).await
    }

    /// No EMF line on stdout (tests).
    #[must_use]
    pub fn without_metrics(mut self) -> Self {
        self.emit_metrics = false;
        self
    }

    pub fn table(&self) -> &StateTable {
        &self.table
    }

    pub fn policy(&self) -> &MaintenancePolicy {
        &self.policy
    }

    /// One pass for `event`; `deadline`: when to stop starting steps.
    pub async fn handle(
        &self,
        event: &EventBridgeEvent<Value>,
        deadline: Option<Instant>,
    ) -> Result<PassReport> {
        let run = schedule::run_of(event, refold::emf::now_ms());
        tracing::info!(
            pipeline = %self.pipeline,
            source = %event.source,
            detail_type = %event.detail_type,
            now_ms = run.now_ms,
            force_checkpoint = run.force_checkpoint,
            "maintenance pass"
        );
        let opts = PassOptions {
            now_ms: run.now_ms,
            force_checkpoint: run.force_checkpoint,
            deadline,
            pipeline: self.pipeline.clone(),
        };
        let report =
            compactor::run_pass(&self.table, self.archive.as_ref(), &self.policy, &opts).await;
        self.publish(&report);
        let failed = report.failed_steps();
        if !failed.is_empty() {
            return Err(Error::new(
                ErrorKind::Io,
                format!(
                    "maintenance of {}: step(s) {} failed (see the report logged)",
                    report.table,
                    failed.join(", ")
                ),
            ));
        }
        Ok(report)
    }

    /// The report as one JSON log line and one EMF line.
    fn publish(&self, report: &PassReport) {
        let json =
            serde_json::to_string(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        tracing::info!(
            pipeline = %self.pipeline,
            table = %report.table,
            ms = report.ms,
            failed_steps = ?report.failed_steps(),
            report = %json,
            "maintenance pass done"
        );
        if self.emit_metrics {
            report.emf().emit();
        }
    }
}
