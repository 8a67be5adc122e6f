//! Folding a batch of source records into new state rows: pure, no I/O.
//!
//! The steps every consumer shares (the fold-batch Lambda, `refold fold`, the demo,
//! replay workers): decode each record's envelope, set aside poison records with their
//! reason, drop event types the source does not take, group the rest by (tenant, key) in
//! offset order, fold each key's events onto its prior state, and account for every
//! record. Reading prior states and committing rows belong to the caller (the state table).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use crate::dead_letter::{DeadLetter, DeadLetterKind};
use crate::envelope::Envelope;
use crate::error::{Error, ErrorKind, Result};
use crate::fold::{FoldErrorKind, FoldProgram, KeyEvents, State};
use crate::pipeline::{ErrorPolicy, Pipeline};
use crate::record::SourceRecord;
use crate::table::StateRow;

/// (tenant_id, key): the identity of a state row. Tenants never share a row.
pub type RowId = (String, String);

/// A pipeline ready to fold batches, compiled once (per Lambda container, per CLI run).
pub struct CompiledPipeline {
    pub pipeline: Pipeline,
    pub key_field: String,
    /// Event types the source takes; empty means all.
    event_types: HashSet<String>,
    pub on_error: ErrorPolicy,
    fold: FoldProgram,
}

impl CompiledPipeline {
    pub fn compile(pipeline: Pipeline) -> Result<Self> {
        let t = pipeline.transformation().clone();
        let source = pipeline.source_of(&t);
        let event_types = source.event_types.iter().cloned().collect();
        let fold = FoldProgram::compile(&t.fold, &t.limits).map_err(|e| {
            Error::new(ErrorKind::Fold, e).with_context(format!("transformation `{}`", t.name))
        })?;
        Ok(Self {
            key_field: t.key_field.clone(),
            event_types,
            on_error: t.on_error,
            fold,
            pipeline,
        })
    }

    pub fn name(&self) -> &str {
        &self.pipeline.metadata.name
    }

    fn accepts(&self, event_type: &str) -> bool {
        self.event_types.is_empty() || self.event_types.contains(event_type)
    }
}

/// (tenant_id, key) of a group, borrowing from the batch where it can.
type GroupId<'r> = (Cow<'r, str>, Cow<'r, str>);

/// One decoded record, kept with the record it came from.
struct Item<'r> {
    record: &'r SourceRecord,
    envelope: Envelope<'r>,
}

/// A batch decoded and grouped by row, before any state is read.
pub struct Prepared<'r> {
    /// Per row, its events in (partition, offset) order.
    groups: BTreeMap<(Cow<'r, str>, Cow<'r, str>), Vec<Item<'r>>>,
    /// Records that did not decode: (record, kind, reason).
    poison: Vec<(&'r SourceRecord, DeadLetterKind, String)>,
    pub received: usize,
    pub filtered: usize,
}

/// Decodes a batch. Records must be in (partition, offset) order, as every adapter
/// delivers them; this is checked.
pub fn prepare<'r>(cp: &CompiledPipeline, records: &'r [SourceRecord]) -> Result<Prepared<'r>> {
    if let Some(w) = records
        .windows(2)
        .find(|w| (w[0].partition, w[0].offset) >= (w[1].partition, w[1].offset))
    {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "records out of order: partition {} offset {} before partition {} offset {}",
                w[0].partition, w[0].offset, w[1].partition, w[1].offset
            ),
        ));
    }
    let mut groups: BTreeMap<(Cow<'r, str>, Cow<'r, str>), Vec<Item<'r>>> = BTreeMap::new();
    let mut poison = Vec::new();
    let mut filtered = 0;
    for record in records {
        let envelope = match Envelope::decode(&record.value) {
            Ok(e) => e,
            Err(e) => {
                let kind = if e.is_bad_json() {
                    DeadLetterKind::BadJson
                } else {
                    DeadLetterKind::InvalidEnvelope
                };
                poison.push((record, kind, e.to_string()));
                continue;
            }
        };
        if !cp.accepts(&envelope.event_type) {
            filtered += 1;
            continue;
        }
        let key = match envelope.key(&cp.key_field) {
            Ok(k) => k.into_owned(),
            Err(e) => {
                poison.push((record, DeadLetterKind::InvalidEnvelope, e.to_string()));
                continue;
            }
        };
        let tenant = envelope.tenant_id.clone();
        groups
            .entry((tenant, Cow::Owned(key)))
            .or_default()
            .push(Item { record, envelope });
    }
    Ok(Prepared {
        groups,
        poison,
        received: records.len(),
        filtered,
    })
}

/// The outcome of folding a prepared batch.
#[derive(Debug, Default)]
pub struct Folded {
    /// New state rows, sorted by (tenant, key).
    pub rows: Vec<StateRow>,
    /// Poison records to set aside (policy `dead_letter`), sorted by (partition, offset).
    pub dead_letters: Vec<DeadLetter>,
    pub counts: Counts,
    /// Under policy `fail`: per partition, the offset of the first poison record. Records
    /// from there on were not folded; the trigger must deliver them again.
    pub failed_at: BTreeMap<i32, i64>,
    /// Per partition, the offset after the last record this fold accounts for.
    pub next_offsets: BTreeMap<i32, i64>,
}

/// Every record of a batch lands in exactly one of these.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub received: usize,
    pub folded: usize,
    pub filtered: usize,
    pub dead_lettered: usize,
    /// Poison records dropped under policy `skip`.
    pub skipped: usize,
    /// Records below their partition's committed offset (delivered again).
    pub already_applied: usize,
    /// Records at or after a failure under policy `fail`, left for redelivery.
    pub deferred: usize,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, c: Counts) {
        self.received += c.received;
        self.folded += c.folded;
        self.filtered += c.filtered;
        self.dead_lettered += c.dead_lettered;
        self.skipped += c.skipped;
        self.already_applied += c.already_applied;
        self.deferred += c.deferred;
    }
}

impl Counts {
    /// received = folded + filtered + dead_lettered + skipped + already_applied + deferred.
    pub fn balanced(&self) -> bool {
        self.received
            == self.folded
                + self.filtered
                + self.dead_lettered
                + self.skipped
                + self.already_applied
                + self.deferred
    }
}

impl Prepared<'_> {
    /// The rows this batch touches, for looking up their prior states.
    pub fn row_ids(&self) -> Vec<RowId> {
        self.groups
            .keys()
            .map(|(t, k)| (t.to_string(), k.to_string()))
            .collect()
    }

    /// The partitions of the batch with the offset after each one's last record.
    pub fn partition_ends(&self, records: &[SourceRecord]) -> BTreeMap<i32, i64> {
        let mut ends = BTreeMap::new();
        for r in records {
            ends.insert(r.partition, r.offset + 1);
        }
        ends
    }

    /// Folds the batch onto `priors`. `committed(p)` is partition `p`'s committed next
    /// offset (records below it were applied before and are counted, not folded again);
    /// `ends` are the batch's partition ends from [`Prepared::partition_ends`].
    pub fn fold(
        &self,
        cp: &CompiledPipeline,
        priors: &HashMap<RowId, StateRow>,
        committed: &dyn Fn(i32) -> i64,
        ends: &BTreeMap<i32, i64>,
    ) -> Folded {
        // Under `fail`, each failure cuts its partition at the failing offset and the fold is
        // redone without the rest; each round cuts at least one partition earlier, so this
        // ends within (records + 1) rounds.
        let mut cut: BTreeMap<i32, i64> = BTreeMap::new();
        for round in 0..=self.received {
            let folded = self.fold_once(cp, priors, committed, ends, &cut);
            if cp.on_error != ErrorPolicy::Fail || folded.failed_at == cut {
                assert!(
                    folded.counts.balanced(),
                    "batch accounting: {:?}",
                    folded.counts
                );
                return folded;
            }
            assert!(round < self.received, "fail-policy cuts converge");
            cut = folded.failed_at;
        }
        unreachable!("the loop returns within received + 1 rounds")
    }

    fn fold_once(
        &self,
        cp: &CompiledPipeline,
        priors: &HashMap<RowId, StateRow>,
        committed: &dyn Fn(i32) -> i64,
        ends: &BTreeMap<i32, i64>,
        cut: &BTreeMap<i32, i64>,
    ) -> Folded {
        let mut counts = Counts {
            received: self.received,
            filtered: self.filtered,
            ..Counts::default()
        };
        let live = |r: &SourceRecord| r.offset >= committed(r.partition);
        let before_cut = |r: &SourceRecord| cut.get(&r.partition).is_none_or(|c| r.offset < *c);
        let mut failed_at: BTreeMap<i32, i64> = cut.clone();
        let mut poison: Vec<(&SourceRecord, DeadLetterKind, String)> = Vec::new();
        for (record, kind, reason) in &self.poison {
            if !live(record) {
                counts.already_applied += 1;
            } else if !before_cut(record) {
                counts.deferred += 1;
            } else {
                poison.push((record, *kind, reason.clone()));
            }
        }

        // Per row: the events still to fold, in offset order.
        let mut work: Vec<(&GroupId, Vec<&Item>)> = Vec::with_capacity(self.groups.len());
        for (id, items) in &self.groups {
            let mut todo = Vec::with_capacity(items.len());
            for item in items {
                if !live(item.record) {
                    counts.already_applied += 1;
                } else if !before_cut(item.record) {
                    counts.deferred += 1;
                } else {
                    todo.push(item);
                }
            }
            if !todo.is_empty() {
                work.push((id, todo));
            }
        }
        let ids: Vec<RowId> = work
            .iter()
            .map(|((t, k), _)| (t.to_string(), k.to_string()))
            .collect();
        let envelopes: Vec<Vec<&Envelope>> = work
            .iter()
            .map(|(_, items)| items.iter().map(|i| &i.envelope).collect())
            .collect();
        let inputs: Vec<KeyEvents> = ids
            .iter()
            .zip(&envelopes)
            .map(|(id, events)| KeyEvents {
                prior: priors.get(id).map(|r| &r.state),
                events,
            })
            .collect();
        let results = cp.fold.fold_keys(&inputs);

        let mut rows = Vec::with_capacity(results.len());
        for ((id, (_, items)), result) in ids.into_iter().zip(&work).zip(results) {
            for (i, e) in &result.errors {
                let kind = match e.kind {
                    FoldErrorKind::LimitExceeded => DeadLetterKind::LimitExceeded,
                    FoldErrorKind::Raised | FoldErrorKind::BadReturn => DeadLetterKind::FoldError,
                };
                let item = items[*i];
                poison.push((
                    item.record,
                    kind,
                    format!("event `{}`: fold failed: {e}", item.envelope.event_id),
                ));
            }
            counts.folded += result.applied;
            let Some(state) = result.state else { continue };
            if result.applied == 0 {
                continue; // every event failed: the prior row stands as it was
            }
            let failed: HashSet<usize> = result.errors.iter().map(|(i, _)| *i).collect();
            let applied: Vec<&Item> = items
                .iter()
                .enumerate()
                .filter(|(i, _)| !failed.contains(i))
                .map(|(_, it)| *it)
                .collect();
            rows.push(new_row(id, state, priors, &applied));
        }

        poison.sort_by_key(|(r, _, _)| (r.partition, r.offset));
        let mut dead_letters = Vec::new();
        for (record, kind, reason) in poison {
            match cp.on_error {
                ErrorPolicy::DeadLetter => {
                    counts.dead_lettered += 1;
                    dead_letters.push(DeadLetter::from_record(record, kind, reason, cp.name()));
                }
                ErrorPolicy::Skip => counts.skipped += 1,
                ErrorPolicy::Fail => {
                    let at = failed_at.entry(record.partition).or_insert(record.offset);
                    *at = (*at).min(record.offset);
                    // A new cut: `fold` discards this round and refolds without the rest.
                    counts.deferred += 1;
                }
            }
        }
        let next_offsets = ends
            .iter()
            .map(|(p, end)| {
                (
                    *p,
                    failed_at.get(p).copied().unwrap_or(*end).max(committed(*p)),
                )
            })
            .collect();
        let failed_at = if cp.on_error == ErrorPolicy::Fail {
            failed_at
        } else {
            BTreeMap::new()
        };
        Folded {
            rows,
            dead_letters,
            counts,
            failed_at,
            next_offsets,
        }
    }
}

/// The row after folding `applied` (the row's events that folded, in offset order).
fn new_row(
    id: RowId,
    state: State,
    priors: &HashMap<RowId, StateRow>,
    applied: &[&Item],
) -> StateRow {
    let prior = priors.get(&id);
    let (tenant_id, key) = id;
    let last = applied
        .last()
        .expect("rows are built only for keys with an applied event");
    StateRow {
        tenant_id,
        key,
        state,
        source_partition: last.record.partition,
        last_offset: last.record.offset,
        last_event_id: last.envelope.event_id.to_string(),
        last_event_time_us: last.envelope.timestamp_us,
        events_folded: prior.map_or(0, |p| p.events_folded) + applied.len() as i64,
    }
}

/// A stream folded in memory: the state rows by identity, with the batch accounting.
#[derive(Debug, Default)]
pub struct InMemoryView {
    pub rows: BTreeMap<RowId, StateRow>,
    pub counts: Counts,
    pub dead_letters: Vec<DeadLetter>,
}

/// Folds `records` (in (partition, offset) order) in batches of `batch_size`, each onto the
/// states the previous ones left: what the fold-batch Lambda does, without a table.
pub fn fold_in_memory(
    cp: &CompiledPipeline,
    records: &[SourceRecord],
    batch_size: usize,
) -> Result<InMemoryView> {
    assert!(batch_size > 0, "batch_size > 0");
    let mut view = InMemoryView::default();
    let mut committed: HashMap<i32, i64> = HashMap::new();
    for chunk in records.chunks(batch_size) {
        let prepared = prepare(cp, chunk)?;
        let priors: HashMap<RowId, StateRow> = prepared
            .row_ids()
            .into_iter()
            .filter_map(|id| view.rows.get(&id).map(|r| (id, r.clone())))
            .collect();
        let ends = prepared.partition_ends(chunk);
        let folded = prepared.fold(
            cp,
            &priors,
            &|p| committed.get(&p).copied().unwrap_or(0),
            &ends,
        );
        for row in folded.rows {
            view.rows
                .insert((row.tenant_id.clone(), row.key.clone()), row);
        }
        committed.extend(folded.next_offsets);
        view.counts += folded.counts;
        view.dead_letters.extend(folded.dead_letters);
    }
    Ok(view)
}
