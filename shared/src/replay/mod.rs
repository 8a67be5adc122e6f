//! Replay: rebuild a pipeline's view from the topic's history into a new table, in parallel,
//! then (on request) swap it in as the live table.
//!
//! | module | concept |
//! |---|---|
//! | [`request`] | the replay request body (`from_offset`, `to_timestamp`, ...), validated; every problem names its field |
//! | [`problem`] | how an error maps to an HTTP answer: 400 (with the field), 404, 409, 500 |
//! | [`id`] | the replay id: `<utc time>-<random>`, time-sortable, safe in paths and table names |
//! | [`resolve`] | [`OffsetResolver`], the port that answers watermarks and offsets for a time |
//! | [`plan`] | [`ReplayPlan`]: offsets resolved per partition, the target table, the start state, shards |
//! | [`shard`] | whole partitions per shard, balanced by range size (greedy, largest first) |
//! | [`store`] | [`ReplayStore`]: the plan and its state markers, durable in the warehouse (`_refold/replays/...`) |
//! | [`source`] | [`RangeSource`], the port that reads offset ranges of partitions (rdkafka in `refold-kafka`) |
//! | [`memory`] | an in-memory topic implementing both ports (tests, the bench) |
//! | [`target`] | the target table's configuration and batch engine |
//! | [`worker`] | [`run_shard`]: one shard through the batch engine, until done, cancelled or near the deadline |
//! | [`invoker`] | [`ShardInvoker`] (fire-and-forget), the in-process adapter, the continue-or-fail loop |
//! | [`status`] | per-shard progress from the target table's committed offsets, state, events/s, ETA |
//! | [`service`] | [`ReplayService`]: start, status, list, cancel, promote: what the API and the CLI call |
//! | [`promote`] | catch the replay table up to the live one, swap it in atomically |
//!
//! Invariants: a replay never writes the live table (the plan refuses it); a shard holds whole
//! partitions (a key's events stay in order); the target table's committed offsets decide
//! where a shard resumes, so a duplicated or re-invoked shard lands once.

pub mod archive_source;
pub mod handler;
pub mod id;
pub mod invoker;
pub mod memory;
pub mod plan;
pub mod problem;
pub mod promote;
pub mod request;
pub mod resolve;
pub mod service;
pub mod shard;
pub mod source;
pub mod start;
pub mod status;
pub mod store;
pub mod target;
pub mod worker;

pub use id::ReplayId;
pub use invoker::{InProcessInvoker, ShardInvoker, ShardTask};
pub use plan::{PartitionRange, PlanContext, ReplayPlan, Shard, StartState, plan_replay};
pub use problem::{Problem, ReplayConflict, ReplayNotFound, RequestError};
pub use request::{FromOffset, ReplayRequest};
pub use resolve::OffsetResolver;
pub use service::ReplayService;
pub use source::{RangeReader, RangeSource};
pub use status::{ReplayState, ReplayStatus, ShardStatus};
pub use store::{Marker, ReplayStore, StoredReplay};
pub use worker::{ShardOutcome, ShardReport, WorkerLimits, run_shard};
