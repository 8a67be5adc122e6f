//! Fan-out: a [`ShardTask`] is one invocation of one shard. [`ShardInvoker`] starts one,
//! fire-and-forget (Lambda `InvocationType: Event` in the cloud, written by the functions;
//! [`InProcessInvoker`] here: one thread with its own runtime per invocation, so shards fold
//! on separate cores). [`handle_invocation`] is the loop both share: run the shard; on
//! `Continue` invoke the next invocation of it; on a transient error (I/O, a lost
//! compare-and-set) invoke the same invocation again, at most [`MAX_ATTEMPTS_PER_INVOCATION`]
//! times; on any other error, or when the attempts are spent, mark the replay failed.
//!
//! Retrying here rather than leaving it to Lambda's own retry of an asynchronous invoke: an
//! invocation that returns an error would be retried by Lambda too, and once Lambda gives up
//! nothing would mark the replay failed. A retried invocation re-reads where the target
//! table stands, so a retry never applies a record twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::id::ReplayId;
use super::store::{Marker, ReplayStore};
use super::worker::{ShardOutcome, ShardReport, now_ms};
use crate::error::{Error, ErrorKind, Result};

/// Invocations one shard may take (each continues the last one).
pub const MAX_INVOCATIONS_PER_SHARD: u32 = 10_000;
/// Attempts of one invocation when it fails transiently (the first one included).
pub const MAX_ATTEMPTS_PER_INVOCATION: u32 = 5;
/// Wait before the first retry; doubled per attempt.
pub const RETRY_BACKOFF_BASE_MS: u64 = 500;

/// The payload of one shard invocation (the replay-worker Lambda's event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardTask {
    pub pipeline: String,
    pub replay_id: ReplayId,
    pub shard: u32,
    /// 0 for the first invocation, +1 for each continuation.
    #[serde(default)]
    pub invocation: u32,
    /// 0 for the first attempt of this invocation, +1 for each retry after a transient error.
    #[serde(default)]
    pub attempt: u32,
}

impl ShardTask {
    /// The first invocation of `shard`.
    pub fn first(pipeline: &str, replay_id: &ReplayId, shard: u32) -> Self {
        Self {
            pipeline: pipeline.to_owned(),
            replay_id: replay_id.clone(),
            shard,
            invocation: 0,
            attempt: 0,
        }
    }

    /// The continuation (a fresh set of attempts).
    pub fn next(&self) -> Self {
        Self {
            invocation: self.invocation + 1,
            attempt: 0,
            ..self.clone()
        }
    }

    /// This invocation again, after a transient error.
    pub fn retry(&self) -> Self {
        Self {
            attempt: self.attempt + 1,
            ..self.clone()
        }
    }
}

/// An error another attempt may not meet: storage, network or catalog I/O, or a lost
/// compare-and-set. Bad input, configuration, fold errors and bugs fail the replay at once.
pub fn transient(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Io | ErrorKind::CommitConflict)
}

/// The wait before retry `attempt` (1-based): the base doubled per attempt, at most 8 s.
pub fn retry_backoff(attempt: u32) -> Duration {
    let factor = 1u64 << attempt.saturating_sub(1).min(4);
    Duration::from_millis(RETRY_BACKOFF_BASE_MS.saturating_mul(factor))
}

/// Starts one shard invocation and returns without waiting for it.
#[async_trait]
pub trait ShardInvoker: Send + Sync {
    async fn invoke(&self, task: ShardTask) -> Result<()>;
}

/// An invoker that starts nothing (services that only read: status, lists).
pub struct NoInvoker;

#[async_trait]
impl ShardInvoker for NoInvoker {
    async fn invoke(&self, task: ShardTask) -> Result<()> {
        Err(Error::new(
            ErrorKind::Internal,
            format!("this service starts no shard (asked for {task:?})"),
        ))
    }
}

/// Runs one invocation of a shard (what the replay-worker does with its event). Its future
/// need not be `Send` (the batch engine's merge future is not provably `Send`): the
/// in-process invoker runs it on its own thread's runtime, Lambda's runtime on its one.
#[async_trait(?Send)]
pub trait ShardHandler: Send + Sync {
    async fn handle(&self, task: &ShardTask, deadline: Instant) -> Result<ShardReport>;
}

/// One invocation: run it; `Continue` invokes the next one; a transient error invokes this
/// one again (the report says `Retried`); any other error, or the last attempt's, marks the
/// replay failed (with the reason) and is returned.
pub async fn handle_invocation(
    handler: &dyn ShardHandler,
    invoker: &dyn ShardInvoker,
    store: &dyn ReplayStore,
    task: &ShardTask,
    deadline: Instant,
) -> Result<ShardReport> {
    let res = run_invocation(handler, invoker, task, deadline).await;
    let Err(e) = res else { return res };
    let e = match retry_transient(invoker, task, e).await {
        Ok(report) => return Ok(report),
        Err(e) => e,
    };
    let reason = format!(
        "shard {} invocation {} attempt {}: {e}",
        task.shard,
        task.invocation,
        task.attempt + 1
    );
    let mark = store
        .mark(
            &task.pipeline,
            &task.replay_id,
            Marker::failed(now_ms(), &reason),
        )
        .await;
    if let Err(m) = mark {
        tracing::error!(error = %m, "could not mark the replay failed");
    }
    Err(e)
}

async fn run_invocation(
    handler: &dyn ShardHandler,
    invoker: &dyn ShardInvoker,
    task: &ShardTask,
    deadline: Instant,
) -> Result<ShardReport> {
    let report = handler.handle(task, deadline).await?;
    if report.outcome == ShardOutcome::Continue {
        if task.invocation + 1 >= MAX_INVOCATIONS_PER_SHARD {
            return Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "shard {} took {MAX_INVOCATIONS_PER_SHARD} invocations",
                    task.shard
                ),
            ));
        }
        invoker.invoke(task.next()).await?;
    }
    Ok(report)
}

/// Invokes `task` again after its backoff when `e` is transient and attempts are left;
/// otherwise hands `e` back.
async fn retry_transient(
    invoker: &dyn ShardInvoker,
    task: &ShardTask,
    e: Error,
) -> Result<ShardReport> {
    if !transient(&e) || task.attempt + 1 >= MAX_ATTEMPTS_PER_INVOCATION {
        return Err(e);
    }
    let retry = task.retry();
    tracing::warn!(
        error = %e,
        shard = task.shard,
        invocation = task.invocation,
        attempt = retry.attempt + 1,
        "transient error: invoking the shard again"
    );
    tokio::time::sleep(retry_backoff(retry.attempt)).await;
    match invoker.invoke(retry).await {
        Ok(()) => Ok(ShardReport::retried(task.shard, &e)),
        Err(i) => Err(e.with_context(format!("and its retry could not be invoked: {i}"))),
    }
}

/// Runs shard invocations in this process, each on its own thread and runtime, with a
/// fixed time budget per invocation (as a Lambda timeout would be).
#[derive(Clone)]
pub struct InProcessInvoker {
    inner: Arc<Inner>,
}

struct Inner {
    handler: Arc<dyn ShardHandler>,
    store: Arc<dyn ReplayStore>,
    invocation_budget: Duration,
    in_flight: AtomicUsize,
    idle: Notify,
    reports: std::sync::Mutex<Vec<(ShardTask, std::result::Result<ShardReport, String>)>>,
}

impl InProcessInvoker {
    pub fn new(
        handler: Arc<dyn ShardHandler>,
        store: Arc<dyn ReplayStore>,
        invocation_budget: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                handler,
                store,
                invocation_budget,
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
                reports: std::sync::Mutex::new(Vec::new()),
            }),
        }
    }

    /// Waits until no invocation runs (continuations included); every invocation's result.
    pub async fn wait_idle(&self) -> Vec<(ShardTask, std::result::Result<ShardReport, String>)> {
        loop {
            let n = self.inner.idle.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if self.inner.in_flight.load(Ordering::SeqCst) == 0 {
                break;
            }
            n.await;
        }
        self.inner
            .reports
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }

    fn run(&self, task: ShardTask) {
        let me = self.clone();
        let deadline = Instant::now() + self.inner.invocation_budget;
        let res = (|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(handle_invocation(
                me.inner.handler.as_ref(),
                &me,
                me.inner.store.as_ref(),
                &task,
                deadline,
            ))
            .map_err(|e| e.to_string())
        })();
        if let Ok(mut r) = self.inner.reports.lock() {
            r.push((task, res));
        }
        self.inner.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.inner.idle.notify_waiters();
    }
}

#[async_trait]
impl ShardInvoker for InProcessInvoker {
    async fn invoke(&self, task: ShardTask) -> Result<()> {
        self.inner.in_flight.fetch_add(1, Ordering::SeqCst);
        let me = self.clone();
        let name = format!("replay-shard-{}", task.shard);
        std::thread::Builder::new()
            .name(name)
            .spawn(move || me.run(task))
            .map(|_| ())
            .map_err(|e| {
                self.inner.in_flight.fetch_sub(1, Ordering::SeqCst);
                Error::new(ErrorKind::Io, "start a shard thread").with_source(e)
            })
    }
}
