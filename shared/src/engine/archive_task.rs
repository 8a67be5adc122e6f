//! One partition's event archive append, run beside that partition's state merge.
//!
//! The append (Arrow, Parquet, its own commit) and the merge (lookup, fold, write) share no
//! data, so on a multi-threaded runtime they run on both cores at once. The order that
//! matters still holds: the merge's step waits for the append ([`ArchiveTask::wait`])
//! before it hands its rows to the state commit, so the archive is never behind the view.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tracing::Instrument;

use arrow_array::RecordBatch;

use crate::archive::Archive;
use crate::error::{Error, ErrorKind, Result};

/// Where one partition's append is.
pub(super) enum ArchiveTask {
    /// No archive (`archive: false`, replays) or nothing to append: counts as 0 appended.
    None,
    Running(JoinHandle<Result<usize>>),
    Done(usize),
    /// It failed, and [`ArchiveTask::wait`] returned its error once already.
    Failed,
}

impl ArchiveTask {
    /// Starts building the rows (`rows`: partition `p`'s valid envelopes, in offset order,
    /// as the archive's rows, or why they could not be built), appending them and moving the
    /// archive's offset to `next_offset`. Building them is part of the task: on a
    /// multi-threaded runtime it runs on another core than the merge.
    pub(super) fn start(
        archive: &Arc<Archive>,
        p: i32,
        rows: impl FnOnce(&Archive) -> Result<RecordBatch> + Send + 'static,
        next_offset: i64,
    ) -> Self {
        let archive = Arc::clone(archive);
        let append = async move {
            let events = rows(&archive)?;
            let outcome = archive.append(p, &events, next_offset).await?;
            Ok(outcome.appended)
        };
        Self::Running(tokio::spawn(append.in_current_span()))
    }

    /// The events appended, once the append's commit landed (or its error, the first time).
    pub(super) async fn wait(&mut self) -> Result<usize> {
        match std::mem::replace(self, Self::Failed) {
            Self::None => {
                *self = Self::None;
                Ok(0)
            }
            Self::Done(n) => {
                *self = Self::Done(n);
                Ok(n)
            }
            Self::Running(handle) => {
                let joined = handle
                    .await
                    .map_err(|e| Error::task_failed("the archive append did not finish", e));
                let appended = joined.and_then(|r| r)?;
                *self = Self::Done(appended);
                Ok(appended)
            }
            Self::Failed => Err(Error::new(
                ErrorKind::Internal,
                "the archive append failed (its error was returned before)",
            )),
        }
    }
}
