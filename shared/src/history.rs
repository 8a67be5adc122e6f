//! One entity's state at any time, event by event: the audit trail of `refold history`.
//!
//! The state at time T is the fold of the entity's events whose event time is at most T,
//! in log order. It starts from the newest checkpoint whose snapshot was committed at or
//! before T (the state table's rows at that snapshot), then folds the archived events past
//! the checkpoint's offsets; `from_start` folds every archived event instead. A checkpoint
//! is only a shortcut if every event it folded is dated at or before its commit: refold
//! checks that the entity's last folded event is, and starts from the first archived event
//! when it is not (an event dated in the future).

use std::collections::BTreeMap;

use crate::archive::{Archive, ArchivedEvent};
use crate::batch::CompiledPipeline;
use crate::envelope::Envelope;
use crate::error::{Error, ErrorKind, Result};
use crate::fold::State;
use crate::table::StateTable;
use crate::table::as_of::Checkpoint;

/// What to rebuild.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery<'a> {
    /// None: the key must be in one tenant only.
    pub tenant: Option<&'a str>,
    pub key: &'a str,
    /// Events dated after this (µs since the epoch) are left out; None: every event.
    pub as_of_us: Option<i64>,
    /// Fold every archived event instead of starting at a checkpoint.
    pub from_start: bool,
}

/// Where the rebuild started.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// The first archived event (an empty state).
    FirstEvent,
    /// A checkpoint of the state table: its name, snapshot, offsets, and the entity's row
    /// there (None: the entity had no row yet).
    Checkpoint {
        name: String,
        snapshot_id: i64,
        offsets: BTreeMap<i32, i64>,
        state: Option<State>,
    },
}

/// One archived event and the state after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub event: ArchivedEvent,
    /// The state after the event (unchanged when the event failed).
    pub state: Option<State>,
    /// Why the event was set aside (an upcaster or the fold failed), as the live fold would.
    pub error: Option<String>,
}

/// The rebuilt history of one entity.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityHistory {
    pub tenant: String,
    pub key: String,
    pub start: Start,
    pub steps: Vec<Step>,
}

impl EntityHistory {
    /// The state at the end (None: the entity has no state at that time).
    pub fn state(&self) -> Option<&State> {
        let from_steps = self.steps.iter().rev().find_map(|s| s.state.as_ref());
        from_steps.or(match &self.start {
            Start::Checkpoint { state, .. } => state.as_ref(),
            Start::FirstEvent => None,
        })
    }
}

/// Rebuilds one entity's history (see the module docs). `table` is the pipeline's state
/// table (its checkpoints), None to fold from the first archived event.
pub async fn rebuild(
    cp: &CompiledPipeline,
    table: Option<&StateTable>,
    archive: &Archive,
    q: &HistoryQuery<'_>,
) -> Result<EntityHistory> {
    let events = archive.read_key(q.tenant, q.key, q.as_of_us).await?;
    let tenant = one_tenant(&events, q)?;
    let mut start = Start::FirstEvent;
    if let (false, Some(table)) = (q.from_start, table) {
        start = checkpoint_start(table, &tenant, q).await?;
    }
    let tail: Vec<ArchivedEvent> = match &start {
        Start::FirstEvent => events,
        Start::Checkpoint { offsets, .. } => events
            .into_iter()
            .filter(|e| e.kafka_offset >= offsets.get(&e.kafka_partition).copied().unwrap_or(0))
            .collect(),
    };
    let mut state = match &start {
        Start::Checkpoint { state, .. } => state.clone(),
        Start::FirstEvent => None,
    };
    let mut steps = Vec::with_capacity(tail.len());
    for event in tail {
        match apply(cp, state.as_ref(), &event) {
            Ok(None) => {} // a type the pipeline does not fold
            Ok(Some(next)) => {
                state = Some(next);
                steps.push(Step {
                    event,
                    state: state.clone(),
                    error: None,
                });
            }
            Err(error) => steps.push(Step {
                event,
                state: state.clone(),
                error: Some(error),
            }),
        }
    }
    Ok(EntityHistory {
        tenant,
        key: q.key.to_owned(),
        start,
        steps,
    })
}

/// The state after one archived event; `Ok(None)` for a type the source filters out.
fn apply(
    cp: &CompiledPipeline,
    prior: Option<&State>,
    event: &ArchivedEvent,
) -> std::result::Result<Option<State>, String> {
    let record = event.to_record();
    let envelope =
        Envelope::decode(&record.value).map_err(|e| format!("archived envelope: {e}"))?;
    if !cp.accepts(envelope.event_type()) {
        return Ok(None);
    }
    let envelope = cp.upcast(envelope)?;
    cp.fold_one(prior, &envelope)
        .map(Some)
        .map_err(|e| e.message)
}

/// The tenant the key's events belong to: `q.tenant`, or the only one there is.
fn one_tenant(events: &[ArchivedEvent], q: &HistoryQuery<'_>) -> Result<String> {
    if let Some(t) = q.tenant {
        return Ok(t.to_owned());
    }
    let mut tenants: Vec<&str> = events.iter().map(|e| e.tenant_id.as_str()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    match tenants.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => Err(Error::new(
            ErrorKind::InvalidInput,
            format!("no archived event has key `{}`{}", q.key, until(q)),
        )),
        many => Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "key `{}` is in {} tenants ({}): name one with --tenant",
                q.key,
                many.len(),
                many.join(", ")
            ),
        )),
    }
}

fn until(q: &HistoryQuery<'_>) -> String {
    q.as_of_us
        .map(|t| {
            format!(
                " dated at or before {}",
                crate::table::as_of::fmt_ms(t.div_euclid(1000))
            )
        })
        .unwrap_or_default()
}

/// The newest checkpoint committed at or before the query's time, if the entity's row
/// there is dated at or before it too; else the first event.
async fn checkpoint_start(table: &StateTable, tenant: &str, q: &HistoryQuery<'_>) -> Result<Start> {
    let checkpoints = table.checkpoints().await?;
    let usable = |c: &&Checkpoint| {
        q.as_of_us
            .is_none_or(|t| c.snapshot_time_ms.saturating_mul(1000) <= t)
    };
    // A checkpoint whose offsets nothing records cannot say where its tail starts.
    let Some(c) = checkpoints
        .iter()
        .rev()
        .find(|c| usable(c) && !c.offsets.is_empty())
    else {
        return Ok(Start::FirstEvent);
    };
    let rows = table
        .rows_at(c.snapshot_id, Some(tenant), Some(q.key))
        .await?;
    let row = rows.into_iter().next();
    if let (Some(r), Some(t)) = (&row, q.as_of_us)
        && r.last_event_time_us > t
    {
        return Ok(Start::FirstEvent);
    }
    Ok(Start::Checkpoint {
        name: c.name.clone(),
        snapshot_id: c.snapshot_id,
        offsets: c.offsets.clone(),
        state: row.map(|r| r.state),
    })
}
