//! The snapshot-compactor Lambda: an EventBridge schedule event in, one maintenance pass
//! over the pipeline's state table (`refold::compactor`: manifests, compaction, checkpoint,
//! expiry, orphans), the pass's report out (also a JSON log line and CloudWatch EMF
//! metrics).
//!
//! `schedule` knows the trigger's shape; `handler` wires it to `refold::compactor`.

pub mod handler;
pub mod schedule;
