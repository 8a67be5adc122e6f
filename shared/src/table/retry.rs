//! The one commit-retry loop of the state table: every kind of commit (merge, compaction,
//! tag, expiry, properties) is "load, build, compare-and-set", retried with jittered
//! exponential backoff (`backon`) when the compare-and-set loses.
//!
//! The policy follows Iceberg's table properties, as every other Iceberg writer of the same
//! table does: `commit.retry.num-retries`, `commit.retry.min-wait-ms`,
//! `commit.retry.max-wait-ms`, `commit.retry.total-timeout-ms`, read from the metadata the
//! first attempt loads; [`TableLimits`] gives the values a table does not set.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};

use super::{Loaded, StateTable, TableLimits};
use crate::error::{Error, ErrorKind, Result};

pub const NUM_RETRIES_PROPERTY: &str = "commit.retry.num-retries";
pub const MIN_WAIT_MS_PROPERTY: &str = "commit.retry.min-wait-ms";
pub const MAX_WAIT_MS_PROPERTY: &str = "commit.retry.max-wait-ms";
pub const TOTAL_TIMEOUT_MS_PROPERTY: &str = "commit.retry.total-timeout-ms";

/// What one attempt of a commit came to.
#[derive(Debug)]
pub(crate) enum Attempt<T> {
    Done(T),
    /// The compare-and-set lost or the base no longer fits: reload and try again.
    Lost(String),
}

/// The retry policy of one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRetry {
    /// Retries after the first attempt.
    pub num_retries: u32,
    pub min_wait: Duration,
    pub max_wait: Duration,
    pub total_timeout: Duration,
    /// Where `num_retries` came from, for the give-up message.
    pub num_retries_source: String,
}

impl CommitRetry {
    /// The table's `commit.retry.*` properties, `limits` where one is absent. A property that
    /// is not a non-negative integer is a `Config` error naming it.
    pub fn from_properties(props: &HashMap<String, String>, limits: &TableLimits) -> Result<Self> {
        let num = |name: &str| -> Result<Option<u64>> {
            props
                .get(name)
                .map(|v| {
                    v.trim().parse::<u64>().map_err(|_| {
                        Error::new(
                            ErrorKind::Config,
                            format!("table property {name}={v:?} is not a non-negative integer"),
                        )
                    })
                })
                .transpose()
        };
        let (num_retries, num_retries_source) = match num(NUM_RETRIES_PROPERTY)? {
            Some(n) => {
                let n = u32::try_from(n).unwrap_or(u32::MAX);
                (n, format!("table property {NUM_RETRIES_PROPERTY}={n}"))
            }
            None => (
                limits.max_commit_attempts.saturating_sub(1),
                format!("max_commit_attempts={}", limits.max_commit_attempts),
            ),
        };
        let ms = |name: &str, default: u64| -> Result<Duration> {
            Ok(Duration::from_millis(num(name)?.unwrap_or(default)))
        };
        let min_wait = ms(MIN_WAIT_MS_PROPERTY, limits.commit_backoff_base_ms)?;
        Ok(Self {
            num_retries,
            min_wait,
            max_wait: ms(MAX_WAIT_MS_PROPERTY, limits.commit_backoff_cap_ms)?.max(min_wait),
            total_timeout: ms(TOTAL_TIMEOUT_MS_PROPERTY, limits.commit_total_timeout_ms)?,
            num_retries_source,
        })
    }

    /// The delays before retries 1, 2, ...: min_wait * 2^(n-1) capped at max_wait, plus a
    /// jitter of up to as much again (so concurrent writers of one table spread out).
    fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::new()
            .with_jitter()
            .with_factor(2.0)
            .with_min_delay(self.min_wait)
            .with_max_delay(self.max_wait)
            .with_max_times(self.num_retries as usize)
            .build()
    }
}

/// A table the retry loop commits to: the state table, the event archive.
pub(crate) trait CommitTarget: Sync {
    /// The current metadata (the base of the next attempt).
    fn load_base(&self) -> impl std::future::Future<Output = Result<Loaded>> + Send;
    /// The defaults of the policy where the table's properties are silent.
    fn retry_limits(&self) -> &TableLimits;
}

impl CommitTarget for StateTable {
    fn load_base(&self) -> impl std::future::Future<Output = Result<Loaded>> + Send {
        self.load()
    }
    fn retry_limits(&self) -> &TableLimits {
        &self.limits
    }
}

/// The retry state of one commit. Callers loop: [`next_base`](Self::next_base), attempt,
/// then `Ok` or [`lost`](Self::lost) (which waits, or gives up). A driver rather than a
/// function taking an async closure: a future holding such a closure's borrows cannot be
/// proven `Send` (rustc's higher-ranked auto-trait limit), and the handlers spawn merges.
pub(crate) struct RetryLoop {
    started: Instant,
    attempts: u32,
    policy: Option<(
        CommitRetry,
        Box<dyn Iterator<Item = Duration> + Send + Sync>,
    )>,
}

impl RetryLoop {
    pub(crate) fn new() -> Self {
        Self {
            started: Instant::now(),
            attempts: 0,
            policy: None,
        }
    }

    /// Loads the base of the next attempt, or takes `given` (a base loaded moments before,
    /// see `StateTable::prefetch`: a stale one loses its compare-and-set and the next
    /// attempt loads). The policy comes from the first attempt's table properties (a retry
    /// does not switch policies midway).
    pub(crate) async fn next_base<T: CommitTarget>(
        &mut self,
        table: &T,
        given: Option<Loaded>,
    ) -> Result<Loaded> {
        self.attempts += 1;
        let base = match given {
            Some(base) => base,
            None => table.load_base().await?,
        };
        if self.policy.is_none() {
            let p = CommitRetry::from_properties(base.metadata.properties(), table.retry_limits())?;
            let delays = Box::new(p.delays());
            self.policy = Some((p, delays));
        }
        Ok(base)
    }

    /// Attempts made so far (1 = the first).
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// After a lost attempt: sleeps the next backoff delay, or gives up with a
    /// `CommitConflict` error naming the limit and the last reason.
    pub(crate) async fn lost(&mut self, why: String) -> Result<()> {
        let n = self.attempts;
        let Some((p, delays)) = self.policy.as_mut() else {
            return Err(Error::new(
                ErrorKind::Internal,
                "commit retry before any attempt",
            ));
        };
        let gave_up = |limit: String| {
            Error::new(
                ErrorKind::CommitConflict,
                format!("gave up after {n} attempt(s) ({limit}; last: {why})"),
            )
        };
        let Some(delay) = delays.next() else {
            return Err(gave_up(p.num_retries_source.clone()));
        };
        if self.started.elapsed() + delay > p.total_timeout {
            return Err(gave_up(format!(
                "{TOTAL_TIMEOUT_MS_PROPERTY} {} ms reached",
                p.total_timeout.as_millis()
            )));
        }
        tracing::debug!(attempt = n, delay_ms = delay.as_millis() as u64, %why, "commit lost, retrying");
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

/// The loop every commit runs: `$attempt` (an expression using `$base: Loaded` and the
/// attempt number `$n: u32`, giving `Result<Attempt<T>>`) until it is done, fails, or the
/// policy is spent. Evaluates to `Result<T>`.
macro_rules! with_commit_retry {
    ($table:expr, |$base:ident, $n:pat_param| $attempt:expr) => {
        $crate::table::retry::with_commit_retry!($table, first = None, |$base, $n| $attempt)
    };
    // `first`: the first attempt's base, when the caller has one (else it is loaded).
    ($table:expr, first = $first:expr, |$base:ident, $n:pat_param| $attempt:expr) => {
        async {
            let mut retry = $crate::table::retry::RetryLoop::new();
            let mut first: Option<$crate::table::Loaded> = $first;
            loop {
                let $base = retry.next_base($table, first.take()).await?;
                let $n = retry.attempts();
                match $attempt? {
                    $crate::table::retry::Attempt::Done(t) => {
                        return $crate::error::Result::<_>::Ok(t);
                    }
                    $crate::table::retry::Attempt::Lost(why) => retry.lost(why).await?,
                }
            }
        }
        .await
    };
}
pub(crate) use with_commit_retry;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn properties_win_over_limits() {
        let limits = TableLimits::default();
        let p = CommitRetry::from_properties(&HashMap::new(), &limits).unwrap();
        assert_eq!(p.num_retries, limits.max_commit_attempts - 1);
        assert_eq!(
            p.min_wait,
            Duration::from_millis(limits.commit_backoff_base_ms)
        );
        assert!(p.num_retries_source.contains("max_commit_attempts=12"));
        assert_eq!(p.delays().count(), 11);

        let props = HashMap::from([
            (NUM_RETRIES_PROPERTY.to_string(), "2".to_string()),
            (MIN_WAIT_MS_PROPERTY.to_string(), "5".to_string()),
            (MAX_WAIT_MS_PROPERTY.to_string(), "7".to_string()),
            (TOTAL_TIMEOUT_MS_PROPERTY.to_string(), "100".to_string()),
        ]);
        let p = CommitRetry::from_properties(&props, &limits).unwrap();
        assert_eq!(p.num_retries, 2);
        assert_eq!(p.total_timeout, Duration::from_millis(100));
        let d: Vec<Duration> = p.delays().collect();
        assert_eq!(d.len(), 2);
        assert!(d[0] >= Duration::from_millis(5) && d[0] < Duration::from_millis(10));
        assert!(d[1] >= Duration::from_millis(7) && d[1] < Duration::from_millis(14));

        let bad = HashMap::from([(NUM_RETRIES_PROPERTY.to_string(), "-1".to_string())]);
        let e = CommitRetry::from_properties(&bad, &limits).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains(NUM_RETRIES_PROPERTY), "{e}");
    }
}
