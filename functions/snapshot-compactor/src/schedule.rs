//! The trigger: an EventBridge event (`aws_lambda_events`' `EventBridgeEvent`), from a
//! schedule rule (`"detail-type": "Scheduled Event"`, `"source": "aws.events"`, `detail` `{}`)
//! or EventBridge Scheduler with the same shape. What the pass takes from it: its time
//! (the pass's clock, so a retried delivery names the same checkpoint and changes nothing)
//! and, optionally, `detail.force_checkpoint`.

use std::time::{Duration, Instant};

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::Deserialize;
use serde_json::Value;

/// How long before the invocation's deadline the pass stops starting steps.
pub const DEADLINE_MARGIN_MS: u64 = 30_000;

/// Optional fields of `detail`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Detail {
    /// Take a checkpoint whatever the interval (as `refold compact --now`).
    pub force_checkpoint: bool,
}

/// What one scheduled run is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The event's time, never later than `now_ms` (a clock ahead would shorten the
    /// orphans' grace period); `now_ms` when the event has none.
    pub now_ms: i64,
    pub force_checkpoint: bool,
}

/// Reads the run out of the event; a `detail` of another shape is ignored (logged).
pub fn run_of(event: &EventBridgeEvent<Value>, now_ms: i64) -> Run {
    let detail = match serde_json::from_value::<Detail>(event.detail.clone()) {
        Ok(d) => d,
        Err(e) => {
            if !event.detail.is_null() {
                tracing::warn!(error = %e, "event detail ignored (expected {{\"force_checkpoint\": bool}})");
            }
            Detail::default()
        }
    };
    let at = event.time.map_or(now_ms, |t| t.timestamp_millis());
    Run {
        now_ms: at.min(now_ms),
        force_checkpoint: detail.force_checkpoint,
    }
}

/// The instant the pass stops starting steps: the invocation's deadline (milliseconds since
/// the Unix epoch, as the runtime gives it) minus [`DEADLINE_MARGIN_MS`]. A deadline already
/// past when the invocation starts is not one Lambda gives (`cargo lambda watch` sends a
/// constant 600,000, a moment of 1970): no deadline then.
pub fn deadline(deadline_epoch_ms: u64, now_ms: i64) -> Option<Instant> {
    let left_ms = i64::try_from(deadline_epoch_ms).ok()? - now_ms;
    let left_ms = u64::try_from(left_ms).ok().filter(|&l| l > 0)?;
    Some(Instant::now() + Duration::from_millis(left_ms.saturating_sub(DEADLINE_MARGIN_MS)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../../events/eventbridge/schedule.json");
    /// 2026-12-02T03:00:00Z
    const AT_MS: i64 = 1_796_180_400_000;

    #[test]
    fn the_sample_schedule_event_parses_and_gives_its_time() {
        let ev: EventBridgeEvent<Value> = serde_json::from_str(SAMPLE).unwrap();
        assert_eq!(ev.detail_type, "Scheduled Event");
        assert_eq!(ev.source, "aws.events");
        let run = run_of(&ev, AT_MS + 5_000);
        assert_eq!(
            run,
            Run {
                now_ms: AT_MS,
                force_checkpoint: false
            }
        );
        // A clock behind the event's time wins.
        assert_eq!(run_of(&ev, AT_MS - 1).now_ms, AT_MS - 1);
    }

    #[test]
    fn detail_may_force_a_checkpoint_and_other_details_are_ignored() {
        let mut ev: EventBridgeEvent<Value> = serde_json::from_str(SAMPLE).unwrap();
        ev.detail = serde_json::json!({"force_checkpoint": true});
        assert!(run_of(&ev, AT_MS).force_checkpoint);
        ev.detail = serde_json::json!({"force_checkpoint": "yes"});
        assert!(!run_of(&ev, AT_MS).force_checkpoint);
        ev.time = None;
        assert_eq!(run_of(&ev, 42).now_ms, 42);
    }

    #[test]
    fn deadline_keeps_a_margin() {
        let now = 1_000_000;
        let d = deadline(now as u64 + 60_000, now).unwrap();
        let left = d.saturating_duration_since(Instant::now());
        assert!(left <= Duration::from_millis(30_000) && left > Duration::from_millis(29_000));
        // A past deadline is the emulator's constant, not a real one: no deadline.
        assert!(deadline(now as u64 - 1, now).is_none());
        assert!(deadline(600_000, 1_796_180_400_000).is_none());
    }
}
