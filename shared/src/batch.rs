//! Folding a batch of source records into new state rows: pure, no I/O.
//!
//! The steps every consumer shares (the fold-batch Lambda, `refold fold`, the demo,
//! replay workers): decode each record's envelope, set aside poison records with their
//! reason, drop event types the source does not take, group the rest by (tenant, key) in
//! offset order, fold each key's events onto its prior state, and account for every
//! record. Reading prior states and committing rows belong to the caller (the state table).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::hash::BuildHasher;

use hashbrown::Equivalent;
use rustc_hash::{FxBuildHasher, FxHashMap, FxHashSet};

use crate::dead_letter::{DeadLetter, DeadLetterKind};
use crate::envelope::{Envelope, EnvelopeError};
use crate::error::{Error, ErrorKind, Result};
use crate::fold::upcast::Upcasters;
use crate::fold::{FoldErrorKind, FoldProgram, KeyEvents, State};
use crate::parallel;
use crate::pipeline::{ErrorPolicy, Pipeline};
use crate::record::SourceRecord;
use crate::table::StateRow;

/// Records a decode thread gets at least (~0.6 µs each: a thread's start, ~30 µs, is a few
/// percent of them).
const MIN_DECODE_CHUNK: usize = 2048;
/// Keys a fold thread gets at least (~1.5 µs each with the seed's Starlark fold).
const MIN_FOLD_CHUNK: usize = 1024;

/// (tenant_id, key): the identity of a state row. Tenants never share a row.
pub type RowId = (String, String);

/// Rows by identity: the prior states a fold reads (and `refold fold`'s rows). A hashbrown
/// map so that [`IdRef`] finds a row without copying its identity's two strings (those
/// copies, and SipHash, were much of `refold fold`'s bookkeeping around the fold calls:
/// BENCHMARKS.md, "A batch's rows by identity without copies").
pub type Rows = hashbrown::HashMap<RowId, StateRow, FxBuildHasher>;

/// A row identity borrowed, to look a row up in [`Rows`].
///
/// Its derived `Hash` writes the two strings as `(String, String)`'s does (each field in
/// order, each as a `str`), which `Equivalent` lookups require.
#[derive(Debug, Clone, Copy, Hash)]
pub struct IdRef<'a>(pub &'a str, pub &'a str);

impl Equivalent<RowId> for IdRef<'_> {
    fn equivalent(&self, id: &RowId) -> bool {
        self.0 == id.0 && self.1 == id.1
    }
}

/// How a record's Kafka key must relate to the row it folds into.
///
/// refold looks up a key's prior state in the record's own source partition only (one
/// Iceberg partition per Kafka partition keeps a batch's reads and writes local). That is
/// sound only while each key lives in one partition, which Kafka guarantees when producers
/// key records by the row key. The rule, recorded in the table as `refold.keying`:
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCheck {
    /// The record's Kafka key must be present and equal the row key (`data.<key_field>`,
    /// else `entity_id`). A record without a key, or keyed by something else, could sit
    /// in another partition than the row's other events: it becomes a dead letter of kind
    /// `key_mismatch` (under the pipeline's `on_error` policy) instead of a second live row.
    RecordKey,
    /// No check: for sources of one partition (a JSONL file), where no key can move.
    Off,
}

impl KeyCheck {
    /// The value of the table property `refold.keying`.
    pub fn property(self, key_field: &str) -> String {
        match self {
            KeyCheck::RecordKey => format!("record-key = data.{key_field} | entity_id"),
            KeyCheck::Off => "single-partition source (no key check)".to_owned(),
        }
    }
}

/// A pipeline ready to fold batches, compiled once (per Lambda container, per CLI run).
pub struct CompiledPipeline {
    pub pipeline: Pipeline,
    pub key_field: String,
    /// Event types the source takes; empty means all.
    event_types: FxHashSet<String>,
    pub on_error: ErrorPolicy,
    pub key_check: KeyCheck,
    fold: FoldProgram,
    upcasters: Upcasters,
    /// Threads a batch's decode and fold may use ([`parallel::map_chunks`]).
    threads: usize,
}

impl CompiledPipeline {
    pub fn compile(pipeline: Pipeline) -> Result<Self> {
        let t = pipeline.transformation().clone();
        let source = pipeline.source_of(&t);
        let event_types = source.event_types.iter().cloned().collect();
        let fold = FoldProgram::compile(&t.fold, &t.limits).map_err(|e| {
            Error::new(ErrorKind::Fold, e).with_context(format!("transformation `{}`", t.name))
        })?;
        let upcasters = Upcasters::compile(&t.upcasters, &t.limits).map_err(|e| {
            Error::new(ErrorKind::Fold, e).with_context(format!("upcasters of `{}`", t.name))
        })?;
        Ok(Self {
            key_field: t.key_field.clone(),
            event_types,
            on_error: t.on_error,
            key_check: KeyCheck::RecordKey,
            fold,
            upcasters,
            pipeline,
            threads: parallel::available_threads(),
        })
    }

    /// The envelope in its current shape (the pipeline's upcasters applied); `Err` says
    /// which upcaster failed and why.
    pub fn upcast(&self, envelope: Envelope) -> std::result::Result<Envelope, String> {
        self.upcasters.apply(envelope)
    }

    /// The same pipeline, decoding and folding each batch on up to `threads` threads (at
    /// least 1; by default [`parallel::available_threads`]). A caller that runs batches side
    /// by side already (`refold fold` decodes the next while it folds this one) may want fewer.
    #[must_use]
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.clamp(1, parallel::MAX_THREADS);
        self
    }

    /// The same pipeline with another [`KeyCheck`] (sources of one partition).
    #[must_use]
    pub fn with_key_check(mut self, key_check: KeyCheck) -> Self {
        self.key_check = key_check;
        self
    }

    pub fn name(&self) -> &str {
        &self.pipeline.metadata.name
    }

    /// One event folded onto `prior` (None: a new key): the state after it, or why the
    /// event is set aside (the state stays as it was).
    pub fn fold_one(
        &self,
        prior: Option<&State>,
        event: &Envelope,
    ) -> std::result::Result<State, crate::fold::FoldError> {
        let events = [event];
        let key = KeyEvents {
            prior,
            events: &events,
        };
        let mut out = self.fold.fold_keys(std::slice::from_ref(&key));
        let folded = out.pop().ok_or_else(|| {
            crate::fold::FoldError::new(FoldErrorKind::Raised, "the fold returned no result")
        })?;
        if let Some((_, e)) = folded.errors.into_iter().next() {
            return Err(e);
        }
        Ok(folded.state.unwrap_or_default())
    }

    /// The row key the fold groups `envelope` under: `data.<key_field>` (else `entity_id`)
    /// of the envelope after the upcasters (one may rename the key field); None when it
    /// has none or an upcaster fails.
    pub fn row_key(&self, envelope: &Envelope) -> Option<String> {
        if self.upcasters.is_empty() {
            return envelope.key(&self.key_field).ok().map(|k| k.into_owned());
        }
        let current = self.upcast(envelope.clone()).ok()?;
        current.key(&self.key_field).ok().map(|k| k.into_owned())
    }

    /// Whether the source folds events of this type (the rest are filtered out).
    pub fn accepts(&self, event_type: &str) -> bool {
        self.event_types.is_empty() || self.event_types.contains(event_type)
    }
}

/// One decoded record, kept with the record it came from. The envelope is the decoded one
/// (borrowed: the batch engine's archive append reads the same envelopes at the same time),
/// or the upcast one.
struct Item<'r> {
    record: &'r SourceRecord,
    /// The record's (partition, offset), copied: the fold reads them for every event, and
    /// reading them through `record` missed the cache there (records are decoded on
    /// another core in `refold fold`).
    at: (i32, i64),
    envelope: Cow<'r, Envelope>,
}

/// The events of one row of a batch, in (partition, offset) order.
struct Group<'r> {
    /// Borrowed from the batch's envelopes, unless an upcaster made the envelope.
    tenant: Cow<'r, str>,
    key: Cow<'r, str>,
    items: Vec<Item<'r>>,
}

impl Group<'_> {
    /// The row's identity, owned.
    fn row_id(&self) -> RowId {
        (self.tenant.to_string(), self.key.to_string())
    }
}

/// A record set aside before folding: it did not decode, or broke the keying rule.
enum Poison<'r> {
    /// Read fine from the source, rejected by refold: (record, kind, reason).
    Record(&'r SourceRecord, DeadLetterKind, String),
    /// Could not even be read (bad base64 in the trigger): already a dead letter.
    Undecodable(&'r DeadLetter),
}

impl Poison<'_> {
    fn at(&self) -> (i32, i64) {
        match self {
            Poison::Record(r, _, _) => (r.partition, r.offset),
            Poison::Undecodable(d) => (d.partition, d.offset),
        }
    }

    fn dead_letter(&self, pipeline: &str) -> DeadLetter {
        match self {
            Poison::Record(r, kind, reason) => {
                DeadLetter::from_record(r, *kind, reason.clone(), pipeline)
            }
            Poison::Undecodable(d) => (*d).clone(),
        }
    }
}

/// A batch decoded and grouped by row, before any state is read.
pub struct Prepared<'r> {
    /// Per row, sorted by (tenant, key): its events in (partition, offset) order.
    groups: Vec<Group<'r>>,
    /// Records set aside before folding, in no particular order.
    poison: Vec<Poison<'r>>,
    /// Per partition: its first offset and the offset after its last record, decoded or not.
    spans: BTreeMap<i32, (i64, i64)>,
    pub received: usize,
    pub filtered: usize,
}

/// One record decoded: its envelope, or why it is not one, and the row key it folds under.
pub struct Decoded {
    pub envelope: std::result::Result<Envelope, EnvelopeError>,
    /// The envelope's row key (or why it has none), read once, in the same pass as the
    /// decode, while the parsed document is still in cache (the fold and the archive both
    /// need it; `refold fold` reads it on its decoding thread, not its folding one).
    /// `None` when the envelope did not decode, or when the pipeline has upcasters (the
    /// upcast envelope's key counts, read after upcasting).
    key: Option<std::result::Result<String, EnvelopeError>>,
}

impl Decoded {
    /// The row key [`CompiledPipeline::row_key`] gives (what the archive records).
    pub fn row_key(&self, cp: &CompiledPipeline) -> Option<Cow<'_, str>> {
        match (&self.envelope, &self.key) {
            (Ok(_), Some(key)) => key.as_deref().ok().map(Cow::Borrowed),
            (Ok(envelope), None) => cp.row_key(envelope).map(Cow::Owned),
            (Err(_), _) => None,
        }
    }
}

/// Decodes each record's envelope and reads its row key: the part of a batch's work that
/// needs no other record, so a caller may run it elsewhere (`refold fold` decodes the next
/// batch on another thread while it folds this one) and share it ([`prepare_decoded`]
/// borrows it, so the archive's append can read the same envelopes meanwhile).
pub fn decode(cp: &CompiledPipeline, records: &[SourceRecord]) -> Vec<Decoded> {
    let keyed = cp.upcasters.is_empty();
    parallel::map_chunks(records, cp.threads, MIN_DECODE_CHUNK, |chunk| {
        chunk
            .iter()
            .map(|r| {
                let envelope = Envelope::decode(&r.value);
                let key = match &envelope {
                    Ok(e) if keyed => Some(e.key(&cp.key_field).map(Cow::into_owned)),
                    _ => None,
                };
                Decoded { envelope, key }
            })
            .collect()
    })
}

/// Groups a decoded batch by row: `decoded[i]` is [`decode`]'s result for `records[i]`.
/// Records must be in (partition, offset) order, as every adapter delivers them; this is
/// checked. `undecodable` are records of the same batch that could not be read at all (bad
/// base64): they take the same path as every other poison record (dead letter, skip or fail
/// by policy; already applied below the committed offset).
pub fn prepare_decoded<'r>(
    cp: &CompiledPipeline,
    records: &'r [SourceRecord],
    decoded: &'r [Decoded],
    undecodable: &'r [DeadLetter],
) -> Result<Prepared<'r>> {
    assert_eq!(decoded.len(), records.len(), "one decode result per record");
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
    let mut grouping = Grouping::default();
    let mut poison: Vec<Poison<'r>> = undecodable.iter().map(Poison::Undecodable).collect();
    let mut filtered = 0;
    for (record, Decoded { envelope, key }) in records.iter().zip(decoded) {
        let envelope: &'r Envelope = match envelope {
            Ok(e) => e,
            Err(e) => {
                let kind = if e.is_bad_json() {
                    DeadLetterKind::BadJson
                } else {
                    DeadLetterKind::InvalidEnvelope
                };
                poison.push(Poison::Record(record, kind, e.to_string()));
                continue;
            }
        };
        if !cp.accepts(envelope.event_type()) {
            filtered += 1;
            continue;
        }
        // After the filter (upcasting keeps the type): an upcaster is user code, and its
        // failure is the event's, set aside like a fold's.
        let upcast = if cp.upcasters.is_empty() {
            Ok(Cow::Borrowed(envelope))
        } else {
            cp.upcast(envelope.clone()).map(Cow::Owned)
        };
        let envelope = match upcast {
            Ok(e) => e,
            Err(reason) => {
                poison.push(Poison::Record(record, DeadLetterKind::FoldError, reason));
                continue;
            }
        };
        // Borrowed for the batch's life where the decode read the key; else owned.
        let key: std::result::Result<Cow<'r, str>, EnvelopeError> = match key {
            Some(k) => k.as_deref().map(Cow::Borrowed).map_err(Clone::clone),
            None => envelope
                .key(&cp.key_field)
                .map(|k| Cow::Owned(k.into_owned())),
        };
        let key = match key {
            Ok(k) => k,
            Err(e) => {
                poison.push(Poison::Record(
                    record,
                    DeadLetterKind::InvalidEnvelope,
                    e.to_string(),
                ));
                continue;
            }
        };
        if let Some(reason) = key_mismatch(cp, record, &key) {
            poison.push(Poison::Record(record, DeadLetterKind::KeyMismatch, reason));
            continue;
        }
        let tenant = match &envelope {
            Cow::Borrowed(e) => Cow::Borrowed(e.tenant_id()),
            Cow::Owned(e) => Cow::Owned(e.tenant_id().to_owned()),
        };
        grouping.group(tenant, key).items.push(Item {
            record,
            at: (record.partition, record.offset),
            envelope,
        });
    }
    let mut spans: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    let offsets = records
        .iter()
        .map(|r| (r.partition, r.offset))
        .chain(undecodable.iter().map(|d| (d.partition, d.offset)));
    for (p, o) in offsets {
        let span = spans.entry(p).or_insert((o, o + 1));
        *span = (span.0.min(o), span.1.max(o + 1));
    }
    Ok(Prepared {
        groups: grouping.into_sorted(),
        poison,
        spans,
        received: records.len() + undecodable.len(),
        filtered,
    })
}

/// Groups a batch's items by row. The index holds group numbers only, hashed by identity
/// and compared against the groups' own (borrowed) strings: an event allocates nothing
/// for its row's identity (two String copies per event were a tenth of `refold fold`).
#[derive(Default)]
struct Grouping<'r> {
    groups: Vec<Group<'r>>,
    /// Indexes into `groups`, by the hash of their (tenant, key).
    index: hashbrown::HashTable<usize>,
}

impl<'r> Grouping<'r> {
    fn group(&mut self, tenant: Cow<'r, str>, key: Cow<'r, str>) -> &mut Group<'r> {
        let Self { groups, index } = self;
        let hash_of = |g: &Group| FxBuildHasher.hash_one(IdRef(&g.tenant, &g.key));
        let hash = FxBuildHasher.hash_one(IdRef(&tenant, &key));
        let found = index.find(hash, |&i| {
            groups[i].tenant == tenant && groups[i].key == key
        });
        let i = match found {
            Some(&i) => i,
            None => {
                let i = groups.len();
                groups.push(Group {
                    tenant,
                    key,
                    // Most rows have one event per batch; an empty Vec would grow to room
                    // for four (~1 KB) at the first push.
                    items: Vec::with_capacity(1),
                });
                index.insert_unique(hash, i, |&j| hash_of(&groups[j]));
                i
            }
        };
        &mut groups[i]
    }

    fn into_sorted(self) -> Vec<Group<'r>> {
        let mut groups = self.groups;
        groups.sort_unstable_by(|a, b| (&a.tenant, &a.key).cmp(&(&b.tenant, &b.key)));
        groups
    }
}

/// Why `record` breaks the pipeline's [`KeyCheck`] for row key `key`, if it does.
fn key_mismatch(cp: &CompiledPipeline, record: &SourceRecord, key: &str) -> Option<String> {
    if cp.key_check == KeyCheck::Off {
        return None;
    }
    let field = &cp.key_field;
    match &record.key {
        Some(k) if k.as_slice() == key.as_bytes() => None,
        Some(k) => Some(format!(
            "the Kafka record key `{}` is not the event's {field} `{key}`: refold folds a key \
             within one partition, so records must be keyed by {field} (else entity_id)",
            String::from_utf8_lossy(&k[..k.len().min(200)])
        )),
        None => Some(format!(
            "the Kafka record has no key: records must be keyed by {field} (`{key}`) so that \
             all events of a key are in one partition"
        )),
    }
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
        self.groups.iter().map(Group::row_id).collect()
    }

    /// The partitions of the batch with the offset after each one's last record (decoded
    /// or not).
    pub fn partition_ends(&self) -> BTreeMap<i32, i64> {
        self.spans.iter().map(|(p, (_, end))| (*p, *end)).collect()
    }

    /// The first offset of partition `p` in this batch, if the batch has records of it.
    pub fn first_offset(&self, p: i32) -> Option<i64> {
        self.spans.get(&p).map(|(first, _)| *first)
    }

    /// Folds the batch onto `priors`. `committed(p)` is partition `p`'s committed next
    /// offset (records below it were applied before and are counted, not folded again);
    /// `ends` are the batch's partition ends from [`Prepared::partition_ends`].
    pub fn fold(
        &self,
        cp: &CompiledPipeline,
        priors: &Rows,
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
        priors: &Rows,
        committed: &dyn Fn(i32) -> i64,
        ends: &BTreeMap<i32, i64>,
        cut: &BTreeMap<i32, i64>,
    ) -> Folded {
        let mut counts = Counts {
            received: self.received,
            filtered: self.filtered,
            ..Counts::default()
        };
        let live_at = |(p, o): (i32, i64)| o >= committed(p);
        let before_cut_at = |(p, o): (i32, i64)| cut.get(&p).is_none_or(|c| o < *c);
        let mut failed_at: BTreeMap<i32, i64> = cut.clone();
        // (partition, offset, dead letter) of every record set aside by this fold.
        let mut poison: Vec<(i32, i64, DeadLetter)> = Vec::new();
        for p in &self.poison {
            if !live_at(p.at()) {
                counts.already_applied += 1;
            } else if !before_cut_at(p.at()) {
                counts.deferred += 1;
            } else {
                let (partition, offset) = p.at();
                poison.push((partition, offset, p.dead_letter(cp.name())));
            }
        }

        // Per row: its prior and the events still to fold, in offset order; the events of
        // every row in one buffer (`items` and `envelopes` side by side), not a Vec a row.
        let mut work: Vec<(&Group, Option<&StateRow>, std::ops::Range<usize>)> =
            Vec::with_capacity(self.groups.len());
        let mut items: Vec<&Item> = Vec::with_capacity(self.received);
        for group in &self.groups {
            let start = items.len();
            for item in &group.items {
                if !live_at(item.at) {
                    counts.already_applied += 1;
                } else if !before_cut_at(item.at) {
                    counts.deferred += 1;
                } else {
                    items.push(item);
                }
            }
            if items.len() > start {
                let prior = priors.get(&IdRef(&group.tenant, &group.key));
                work.push((group, prior, start..items.len()));
            }
        }
        let envelopes: Vec<&Envelope> = items.iter().map(|i| &*i.envelope).collect();
        let inputs: Vec<KeyEvents> = work
            .iter()
            .map(|(_, prior, range)| KeyEvents {
                prior: prior.map(|r| &r.state),
                events: &envelopes[range.clone()],
            })
            .collect();
        // Keys fold independently: split over the cores, the results are the same.
        let results = parallel::map_chunks(&inputs, cp.threads, MIN_FOLD_CHUNK, |keys| {
            cp.fold.fold_keys(keys)
        });

        let mut rows = Vec::with_capacity(results.len());
        for ((group, prior, range), result) in work.iter().zip(results) {
            let items = &items[range.clone()];
            for (i, e) in &result.errors {
                let kind = match e.kind {
                    FoldErrorKind::LimitExceeded => DeadLetterKind::LimitExceeded,
                    FoldErrorKind::Raised | FoldErrorKind::BadReturn => DeadLetterKind::FoldError,
                };
                let item = items[*i];
                let reason = format!("event `{}`: fold failed: {e}", item.envelope.event_id());
                poison.push((
                    item.at.0,
                    item.at.1,
                    DeadLetter::from_record(item.record, kind, reason, cp.name()),
                ));
            }
            counts.folded += result.applied;
            let Some(state) = result.state else { continue };
            if result.applied == 0 {
                continue; // every event failed: the prior row stands as it was
            }
            // Sorted event numbers; no allocation in the usual case of no errors.
            let mut failed: Vec<usize> = result.errors.iter().map(|(i, _)| *i).collect();
            failed.sort_unstable();
            failed.dedup();
            let last = (0..items.len())
                .rev()
                .find(|i| failed.binary_search(i).is_err())
                .map(|i| items[i])
                .expect("a key with an applied event has an event that did not fail");
            let applied = items.len() - failed.len();
            rows.push(new_row(group.row_id(), state, *prior, last, applied));
        }

        poison.sort_by_key(|(p, o, _)| (*p, *o));
        let mut dead_letters = Vec::new();
        for (partition, offset, dead_letter) in poison {
            match cp.on_error {
                ErrorPolicy::DeadLetter => {
                    counts.dead_lettered += 1;
                    dead_letters.push(dead_letter);
                }
                ErrorPolicy::Skip => counts.skipped += 1,
                ErrorPolicy::Fail => {
                    let at = failed_at.entry(partition).or_insert(offset);
                    *at = (*at).min(offset);
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

/// The row after folding `applied` events of the row onto `prior`, `last` the last of them.
fn new_row(
    id: RowId,
    state: State,
    prior: Option<&StateRow>,
    last: &Item,
    applied: usize,
) -> StateRow {
    let (tenant_id, key) = id;
    StateRow {
        tenant_id,
        key,
        state,
        source_partition: last.at.0,
        last_offset: last.at.1,
        last_event_id: last.envelope.event_id().to_owned(),
        last_event_time_us: last.envelope.timestamp_us(),
        events_folded: prior.map_or(0, |p| p.events_folded) + applied as i64,
    }
}

/// A stream folded in memory: the state rows by identity, with the batch accounting.
#[derive(Debug, Default)]
pub struct InMemoryView {
    pub rows: BTreeMap<RowId, StateRow>,
    pub counts: Counts,
    pub dead_letters: Vec<DeadLetter>,
}

/// A stream being folded in memory, batch after batch. Its size is that of its rows (one
/// per key) and dead letters, not of the events folded. Rows are kept hashed while
/// folding (a sorted map of ~90,000 rows cost a tenth of `refold fold` in string
/// comparisons) and sorted once, by [`InMemoryFold::finish`].
#[derive(Debug, Default)]
pub struct InMemoryFold {
    rows: Rows,
    counts: Counts,
    dead_letters: Vec<DeadLetter>,
    /// Per partition, the offset after the last record folded so far.
    next_offsets: FxHashMap<i32, i64>,
}

impl InMemoryFold {
    /// Folds one prepared batch onto the rows the earlier ones left. Its records must come
    /// after those of earlier batches, in (partition, offset) order.
    pub fn fold_batch(&mut self, cp: &CompiledPipeline, prepared: &Prepared<'_>) {
        let ends = prepared.partition_ends();
        let committed = &self.next_offsets;
        // The rows so far are the priors as they stand: no row is moved or copied for it.
        let folded = prepared.fold(
            cp,
            &self.rows,
            &|p| committed.get(&p).copied().unwrap_or(0),
            &ends,
        );
        // Rows the batch did not change (every event of the key failed) stand as they were.
        for row in folded.rows {
            match self.rows.get_mut(&IdRef(&row.tenant_id, &row.key)) {
                Some(slot) => *slot = row,
                None => {
                    self.rows.insert(row.identity(), row);
                }
            }
        }
        self.next_offsets.extend(folded.next_offsets);
        self.counts += folded.counts;
        self.dead_letters.extend(folded.dead_letters);
    }

    /// The view: rows sorted by identity.
    pub fn finish(self) -> InMemoryView {
        InMemoryView {
            rows: self.rows.into_iter().collect(),
            counts: self.counts,
            dead_letters: self.dead_letters,
        }
    }
}

/// Folds `records` (in (partition, offset) order) in batches of `batch_size`, each onto the
/// states the previous ones left: what the fold-batch Lambda does, without a table.
pub fn fold_in_memory(
    cp: &CompiledPipeline,
    records: &[SourceRecord],
    batch_size: usize,
) -> Result<InMemoryView> {
    assert!(batch_size > 0, "batch_size > 0");
    let mut fold = InMemoryFold::default();
    for chunk in records.chunks(batch_size) {
        let decoded = decode(cp, chunk);
        fold.fold_batch(cp, &prepare_decoded(cp, chunk, &decoded, &[])?);
    }
    Ok(fold.finish())
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    /// `IdRef` finds exactly the rows of its identity, including identities whose strings
    /// split the same bytes differently (which must hash and compare apart).
    #[test]
    fn id_ref_finds_the_row_of_its_identity_only() {
        let ids = [
            ("t", "ab"),
            ("ta", "b"),
            ("", "tab"),
            ("tab", ""),
            ("t", "a"),
        ];
        let mut rows = hashbrown::HashMap::with_hasher(FxBuildHasher);
        for (i, (t, k)) in ids.iter().enumerate() {
            rows.insert(((*t).to_owned(), (*k).to_owned()), i);
        }
        for (i, (t, k)) in ids.iter().enumerate() {
            assert_eq!(rows.get(&IdRef(t, k)), Some(&i), "({t:?}, {k:?})");
            let owned = ((*t).to_owned(), (*k).to_owned());
            assert_eq!(
                rows.hasher().hash_one(IdRef(t, k)),
                rows.hasher().hash_one(&owned),
                "IdRef hashes as (String, String) does"
            );
        }
        assert_eq!(rows.get(&IdRef("t", "b")), None);
        assert_eq!(
            rows.remove_entry(&IdRef("ta", "b")),
            Some((ids_owned("ta", "b"), 1))
        );
    }

    fn ids_owned(t: &str, k: &str) -> RowId {
        (t.to_owned(), k.to_owned())
    }
}
