//! Snapshot expiry by a caller's choice (the maintenance policy's window and tags), chosen
//! again on every attempt's base: a concurrent commit changes which snapshot is current.
//! Metadata only; see `commit::expire`.

use serde::Serialize;

use super::commit::CommitResult;
use super::commit::expire::commit_remove_snapshots;
use super::history::History;
use super::hooks::HookPoint;
use super::retry::{self, Attempt};
use super::{Loaded, StateTable};
use crate::error::Result;

/// What an expiry did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExpireOutcome {
    pub snapshots_before: usize,
    pub expired: usize,
    pub attempts: u32,
}

impl StateTable {
    /// Removes the snapshots `select` picks from each attempt's [`History`] (never main's
    /// current one nor a referenced one: those make the commit fail as a bug).
    pub async fn expire_snapshots_by<F>(&self, select: F) -> Result<ExpireOutcome>
    where
        F: Fn(&History) -> Vec<i64> + Send + Sync,
    {
        let ctx = || format!("expire snapshots of {}", self.cfg.table);
        retry::with_commit_retry!(self, |base, n| self.expire_attempt(&base, n, &select).await)
            .map_err(|e| e.with_context(ctx()))
    }

    async fn expire_attempt<F>(
        &self,
        base: &Loaded,
        attempt: u32,
        select: &F,
    ) -> Result<Attempt<ExpireOutcome>>
    where
        F: Fn(&History) -> Vec<i64> + Send + Sync,
    {
        let h = History::from_metadata(&base.metadata)?;
        let ids = select(&h);
        let outcome = ExpireOutcome {
            snapshots_before: h.snapshots.len(),
            expired: ids.len(),
            attempts: attempt,
        };
        if ids.is_empty() {
            return Ok(Attempt::Done(outcome));
        }
        self.hooks.run(HookPoint::ExpireBeforeCommit, attempt).await;
        let res = commit_remove_snapshots(
            &self.file_io,
            self.catalog.as_ref(),
            &self.ident,
            base,
            &ids,
        )
        .await?;
        Ok(match res {
            CommitResult::Committed { .. } => Attempt::Done(outcome),
            CommitResult::Lost(why) => Attempt::Lost(why),
        })
    }
}
