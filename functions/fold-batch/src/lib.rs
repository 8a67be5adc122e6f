//! The fold-batch Lambda: the Kafka event source mapping event in, state rows merged into
//! the Iceberg state table, poison records set aside, a partial batch response out.
//!
//! `esm` knows the trigger's shapes, `config` the environment, `handler` wires them to
//! refold's batch processor; `metrics` writes CloudWatch EMF, `logging` sets up tracing.

pub mod config;
pub mod esm;
pub mod handler;
pub mod logging;
pub mod metrics;
pub mod process;
