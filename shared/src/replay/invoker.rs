//! Fan-out: a [`ShardTask`] is one invocation of one shard. [`ShardInvoker`] starts one,
//! fire-and-forget (Lambda `InvocationType: Event` in the cloud, written by the functions;
//! [`InProcessInvoker`] here: one thread with its own runtime per invocation, so shards fold
//! on separate cores). [`handle_invocation`] is the loop both share: run the shard; on
//! `Continue` invoke the next invocation of it; on an error mark the replay failed.

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

/// The payload of one shard invocation (the replay-worker Lambda's event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardTask {
    pub pipeline: String,
    pub replay_id: ReplayId,
    pub shard: u32,
    /// 0 for the first invocation, +1 for each continuation.
    #[serde(default)]
    pub invocation: u32,
}

impl ShardTask {
    pub fn next(&self) -> Self {
        Self {
            invocation: self.invocation + 1,
            ..self.clone()
        }
    }
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

/// One invocation: run it; `Continue` invokes the next one; an error marks the replay
/// failed (with the reason) and is returned.
pub async fn handle_invocation(
    handler: &dyn ShardHandler,
    invoker: &dyn ShardInvoker,
    store: &dyn ReplayStore,
    task: &ShardTask,
    deadline: Instant,
) -> Result<ShardReport> {
    let res = async {
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
    .await;
    if let Err(e) = &res {
        let reason = format!("shard {} invocation {}: {e}", task.shard, task.invocation);
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
    }
    res
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
