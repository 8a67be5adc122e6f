//! The fold-batch Lambda: the Kafka event source mapping event in, state rows merged into
//! the Iceberg state table, poison records set aside, a partial batch response out.
//!
//! `esm` knows the trigger's shapes, `handler` wires it to refold's batch engine
//! (`refold::engine`, shared with the replay worker and the demo); `metrics` writes
//! CloudWatch EMF; `parse_layer` parses the event ahead of the runtime's slower deserializer.

// jemalloc, one arena: the engine decodes and folds on every core (refold-alloc says why).
use refold_alloc as _;

pub mod esm;
pub mod handler;
pub mod metrics;
pub mod parse_layer;
