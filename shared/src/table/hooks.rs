//! Test hooks: named points of the commit paths where a test runs its own code and the
//! commit waits for it, so an interleaving of concurrent writers is forced, not hoped for
//! (e.g. a fold-batch merge committing between a compaction's rewrite and its
//! compare-and-set). Unset, a point costs one uncontended lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

/// Where a hook runs.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookPoint {
    /// A merge wrote its data and delete files; its compare-and-set is next.
    MergeBeforeCommit,
    /// A compaction wrote its files; its replace commit is next.
    CompactBeforeCommit,
    /// A manifest merge wrote its manifests; its commit is next.
    ManifestsBeforeCommit,
    /// Expiry chose its snapshots; its commit is next.
    ExpireBeforeCommit,
    /// The orphan step listed the files; reading the references is next.
    OrphansAfterList,
    /// An event archive append wrote its files; its compare-and-set is next.
    ArchiveBeforeCommit,
}

/// A hook: called with the point and the attempt number (1 = first) of the commit.
#[doc(hidden)]
pub type HookFn = Arc<dyn Fn(HookPoint, u32) -> BoxFuture<'static, ()> + Send + Sync>;

#[derive(Default)]
pub(crate) struct Hooks {
    set: Mutex<HashMap<HookPoint, HookFn>>,
}

impl Hooks {
    pub(crate) fn set(&self, point: HookPoint, f: Option<HookFn>) {
        if let Ok(mut m) = self.set.lock() {
            match f {
                Some(f) => m.insert(point, f),
                None => m.remove(&point),
            };
        }
    }

    pub(crate) async fn run(&self, point: HookPoint, attempt: u32) {
        let f = self.set.lock().ok().and_then(|m| m.get(&point).cloned());
        if let Some(f) = f {
            f(point, attempt).await;
        }
    }
}

impl super::StateTable {
    /// Sets (or with `None` clears) the hook of `point` on this handle (tests).
    #[doc(hidden)]
    pub fn set_hook(&self, point: HookPoint, f: Option<HookFn>) {
        self.hooks.set(point, f);
    }

    /// Runs the hook of `point`, if one is set (the maintenance pass's own points).
    #[doc(hidden)]
    pub async fn run_hook(&self, point: HookPoint, attempt: u32) {
        self.hooks.run(point, attempt).await;
    }
}
