//! The handler: one ESM event in, one partial batch response out.
//!
//! decode (base64, sort) -> refold's batch processor (validate, filter, fold per key in
//! offset order, merge into the state table exactly once, dead letters) -> logs, one EMF
//! metrics line, and under the `fail` policy the batch item failures for Kafka.

use std::time::Instant;

use refold::engine::{BatchProcessor, BatchReport};
use refold::error::Result;

use crate::esm::{self, EsmEvent, KafkaBatchResponse};
use crate::metrics::BatchMetrics;

/// Built once per container (pipeline compiled, table opened), shared by every invocation.
pub struct FoldBatch {
    processor: BatchProcessor,
    /// Write the CloudWatch EMF line to stdout after each batch (off for the local demo).
    emit_metrics: bool,
}

impl FoldBatch {
    pub fn new(processor: BatchProcessor) -> Self {
        Self {
            processor,
            emit_metrics: true,
        }
    }

    /// No EMF metrics lines on stdout: for runs outside Lambda that print their own report.
    #[must_use]
    pub fn without_metrics(mut self) -> Self {
        self.emit_metrics = false;
        self
    }

    pub fn processor(&self) -> &BatchProcessor {
        &self.processor
    }

    /// Handles one event; an `Err` makes Lambda retry the whole batch (only for failures that
    /// are not the records' fault: storage, catalog, a lost commit race that kept losing).
    /// Takes the event by value: its records' bytes move into the batch.
    pub async fn handle(&self, event: EsmEvent) -> Result<KafkaBatchResponse> {
        self.handle_with_report(event)
            .await
            .map(|(response, _)| response)
    }

    /// [`FoldBatch::handle`], also returning what the batch did (for the demo and tests).
    pub async fn handle_with_report(
        &self,
        event: EsmEvent,
    ) -> Result<(KafkaBatchResponse, BatchReport)> {
        let pipeline = self.processor.pipeline_name().to_owned();
        let t0 = Instant::now();
        let mut batch = esm::decode(event, &pipeline)?;
        let decode_ms = t0.elapsed().as_secs_f64() * 1e3;
        let received = batch.received();
        let newest_ms = batch.records.iter().filter_map(|r| r.timestamp_ms).max();
        tracing::info!(
            pipeline = %pipeline,
            event_source = batch.event_source.as_deref().unwrap_or("unknown"),
            records = received,
            bad_base64 = batch.dead_letters.len(),
            partitions = batch.partition_keys.len(),
            decode_ms,
            "batch received"
        );
        let records = std::mem::take(&mut batch.records);
        let undecodable = std::mem::take(&mut batch.dead_letters);
        let report: BatchReport = self.processor.process(records, undecodable).await?;
        let response = KafkaBatchResponse::from_failed_at(&batch, &report.failed_at);

        let c = report.counts;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let m = BatchMetrics {
            pipeline: pipeline.clone(),
            events: c.received as u64,
            keys: report.keys as u64,
            folded: c.folded as u64,
            filtered: c.filtered as u64,
            dead_letters: c.dead_lettered as u64,
            skipped: c.skipped as u64,
            already_applied: c.already_applied as u64,
            deferred: c.deferred as u64,
            decode_ms,
            fold_ms: report.fold_ms,
            commit_ms: report.commit_ms,
            lag_ms: newest_ms.map(|t| now_ms - t),
        };
        if self.emit_metrics {
            m.emit();
        }
        tracing::info!(
            pipeline = %pipeline,
            received = c.received,
            folded = c.folded,
            filtered = c.filtered,
            dead_lettered = c.dead_lettered,
            skipped = c.skipped,
            already_applied = c.already_applied,
            deferred = c.deferred,
            keys = report.keys,
            balanced = c.balanced() && c.received == received,
            batch_item_failures = response.batch_item_failures.len(),
            "batch done"
        );
        Ok((response, report))
    }
}
