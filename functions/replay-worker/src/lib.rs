//! replay-worker: one invocation of one replay shard, or a promotion. `event` is what it is
//! invoked with; `config` wires the worker from the function's environment; `handler` runs a
//! shard invocation through `refold::replay::invoker::handle_invocation` (run the shard;
//! before the deadline, invoke the function again with the next invocation of the shard), or
//! a promotion through `refold::replay::promote`.

// jemalloc, one arena: the engine decodes and folds on every core (refold-alloc says why).
use refold_alloc as _;

pub mod config;
pub mod event;
pub mod handler;
