//! Starlark folds: the seed's Python-syntax `fold(state, event)`, run hermetically.
//!
//! Starlark has no I/O, clock, randomness, `while` or recursion, so a fold is a pure
//! function of its inputs, which replay depends on. Each event runs under limits on steps,
//! heap and call depth; going past one is an error for that event only.
//!
//! Speed: one Starlark heap serves many events (a fresh heap per event costs ~5x), and a
//! key's state stays a Starlark value across its events; it becomes JSON once per key.

use std::cell::Cell;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use allocative::Allocative;
use starlark::environment::{FrozenModule, Globals, GlobalsBuilder, Module};
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::starlark_simple_value;
use starlark::syntax::{AstModule, Dialect};
use starlark::values::dict::{AllocDict, Dict, DictRef};
use starlark::values::float::StarlarkFloat;
use starlark::values::list::{AllocList, ListRef};
use starlark::values::tuple::{TupleRef, UnpackTuple};
use starlark::values::{
    Heap, NoSerialize, OwnedFrozenValue, ProvidesStaticType, StarlarkValue, UnpackValue, Value,
    ValueLike,
};
use starlark_derive::starlark_value;

use super::rewrite::{MERGE_FN, rewrite_dict_unpacking};
use super::{FoldError, FoldErrorKind, KeyEvents, KeyFolded, State};
use crate::envelope::{Attr, Envelope};
use crate::json::{self, Json};
use crate::pipeline::FoldLimits;

/// Starlark checks its "cancelled" hook once per this many steps (its constant).
const STEPS_PER_CHECK: u64 = 1000;
/// A heap serves at most this many events before it is dropped, bounding garbage.
const EVENTS_PER_HEAP_MAX: usize = 8192;
/// Nesting depth bound when converting a returned state to JSON.
const STATE_DEPTH_MAX: usize = 64;

/// A compiled Starlark fold.
pub struct StarlarkFold {
    // Keeps the heap that `fold` lives on alive.
    _module: FrozenModule,
    fold: OwnedFrozenValue,
    limits: FoldLimits,
}

impl StarlarkFold {
    /// Rewrites `{**x}`, parses, runs the module body once and takes its `fold`.
    /// Errors start with `line N: ` when they have a location in `source`.
    pub fn compile(source: &str, limits: &FoldLimits) -> Result<Self, String> {
        let (module, fold) = compile_function(
            source,
            "fold_function",
            ("fold", "def fold(state, event):", "the fold function"),
            limits,
        )?;
        Ok(Self {
            _module: module,
            fold,
            limits: *limits,
        })
    }

    /// Folds each key's events; see [`super::FoldProgram::fold_keys`].
    pub fn fold_keys(&self, keys: &[KeyEvents<'_>]) -> Vec<KeyFolded> {
        let mut out = Vec::with_capacity(keys.len());
        while out.len() < keys.len() {
            let before = out.len();
            Module::with_temp_heap(|m| self.fold_on_heap(&m, &keys[out.len()..], &mut out));
            assert!(out.len() > before, "every heap folds at least one key");
        }
        out
    }

    /// Folds keys on one heap until it is used up; returns when the heap should be dropped.
    fn fold_on_heap<'v>(&self, m: &Module<'v>, keys: &[KeyEvents<'_>], out: &mut Vec<KeyFolded>) {
        let heap = m.heap();
        // Allocating the owned value on the module's frozen heap keeps its owner alive as long
        // as this heap, and gives it this heap's lifetime.
        let fold = m.frozen_heap().alloc(self.fold.clone()).to_value();
        let mut eval = Evaluator::new(m);
        let heap_limit_bytes = usize::try_from(self.limits.max_heap_bytes).unwrap_or(usize::MAX);
        // Both calls fail only when a limit is zero or already set; validation forbids zero.
        let _ = eval.set_max_callstack_size(self.limits.max_call_depth.max(1));
        let _ = eval.set_max_heap_size(heap_limit_bytes.max(1));
        let checks_left = step_guard(&mut eval, self.limits.max_steps_per_event);
        // Re-armed for every event (the guard counts one call).
        let checks_per_event = checks_left.get();
        let mut events_on_heap = 0usize;

        for key in keys {
            let prior = key.prior.map(|json| alloc_state(heap, json)).transpose();
            let mut state = match prior {
                Ok(Some(state)) => state,
                Ok(None) => heap.alloc(AllocDict::EMPTY),
                Err(e) => {
                    // A stored state that cannot be read (State::parse rules it out): every
                    // event of the key fails with the reason; the stored state stays.
                    out.push(KeyFolded {
                        state: key.prior.cloned(),
                        applied: 0,
                        errors: (0..key.events.len()).map(|i| (i, e.clone())).collect(),
                    });
                    continue;
                }
            };
            let mut applied = 0;
            let mut errors = Vec::new();
            let mut heap_spoiled = false;
            for (i, event) in key.events.iter().enumerate() {
                checks_left.set(checks_per_event);
                let steps_before = eval.get_total_tick_count();
                let ev = heap.alloc(StarEvent::new(event));
                let result = catch_unwind(AssertUnwindSafe(|| {
                    eval.eval_function(fold, &[state, ev], &[])
                }));
                let steps = eval.get_total_tick_count().saturating_sub(steps_before);
                let outcome = match result {
                    Err(panic) => {
                        heap_spoiled = true;
                        Err(FoldError::new(
                            FoldErrorKind::LimitExceeded,
                            format!("the interpreter gave up: {}", panic_message(&panic)),
                        ))
                    }
                    Ok(_) if checks_left.get() == 0 || steps > self.limits.max_steps_per_event => {
                        Err(FoldError::new(
                            FoldErrorKind::LimitExceeded,
                            format!(
                                "step limit exceeded: more than {} steps for one event",
                                self.limits.max_steps_per_event
                            ),
                        ))
                    }
                    Ok(_) if heap.peak_allocated_bytes() > heap_limit_bytes => {
                        heap_spoiled = true;
                        Err(FoldError::new(
                            FoldErrorKind::LimitExceeded,
                            format!(
                                "heap limit exceeded: more than {} bytes",
                                self.limits.max_heap_bytes
                            ),
                        ))
                    }
                    Ok(Err(e)) if is_stack_overflow(&e) => Err(FoldError::new(
                        FoldErrorKind::LimitExceeded,
                        format!(
                            "call depth limit of {} exceeded",
                            self.limits.max_call_depth
                        ),
                    )),
                    Ok(Err(e)) => Err(FoldError::new(FoldErrorKind::Raised, located(&e))),
                    // Checked per event, not only at the end of the key: a state must be storable
                    // after every event, or the result would depend on where batches split.
                    Ok(Ok(v)) if DictRef::from_value(v).is_some() => check_json(v, 0).map(|()| v),
                    Ok(Ok(v)) => Err(FoldError::new(
                        FoldErrorKind::BadReturn,
                        format!(
                            "fold must return a dict, got {} `{}`",
                            v.get_type(),
                            short(&v.to_repr())
                        ),
                    )),
                };
                match outcome {
                    Ok(v) => {
                        state = v;
                        applied += 1;
                    }
                    Err(e) => errors.push((i, e)),
                }
                events_on_heap += 1;
                if heap_spoiled {
                    break;
                }
            }
            if heap_spoiled {
                // The heap is past its limit (or the interpreter panicked): the rest of this
                // key's events start over on a fresh heap, from the state reached so far.
                let state_json = (applied > 0 || key.prior.is_some())
                    .then(|| to_state(state))
                    .transpose();
                let done = errors.last().map_or(0, |(i, _)| i + 1);
                let mut folded = KeyFolded {
                    state: None,
                    applied,
                    errors,
                };
                match state_json {
                    Ok(s) => folded.state = s,
                    Err(e) => {
                        folded.state = key.prior.cloned();
                        folded.applied = 0;
                        folded.errors = (0..done).map(|i| (i, e.clone())).collect();
                    }
                }
                if done < key.events.len() {
                    let rest = KeyEvents {
                        prior: folded.state.as_ref(),
                        events: &key.events[done..],
                    };
                    let tail = self.fold_keys(std::slice::from_ref(&rest)).remove(0);
                    folded.applied += tail.applied;
                    folded
                        .errors
                        .extend(tail.errors.into_iter().map(|(i, e)| (i + done, e)));
                    folded.state = tail.state.or(folded.state);
                }
                out.push(folded);
                return;
            }
            out.push(self.finish_key(key, state, applied, errors));
            if events_on_heap >= EVENTS_PER_HEAP_MAX
                || heap.allocated_bytes() > heap_limit_bytes / 2
            {
                return;
            }
        }
    }

    /// Converts a key's final state to JSON. Every returned state was checked with
    /// [`check_json`], so this cannot fail short of a bug; if it does, the key keeps its
    /// prior state and every event of it is reported, rather than a panic.
    fn finish_key(
        &self,
        key: &KeyEvents<'_>,
        state: Value<'_>,
        applied: usize,
        errors: Vec<(usize, FoldError)>,
    ) -> KeyFolded {
        if applied == 0 && key.prior.is_none() {
            return KeyFolded {
                state: None,
                applied,
                errors,
            };
        }
        match to_state(state) {
            Ok(s) => KeyFolded {
                state: Some(s),
                applied,
                errors,
            },
            Err(e) => KeyFolded {
                state: key.prior.cloned(),
                applied: 0,
                errors: (0..key.events.len()).map(|i| (i, e.clone())).collect(),
            },
        }
    }
}

/// Rewrites `{**x}` in `source`, parses it as `file`, runs the module body once and takes
/// its function `name` (`def_line` and `what` for the messages: `def fold(state, event):`,
/// "the fold function"). Errors start with `line N: ` when they have a location.
pub(super) fn compile_function(
    source: &str,
    file: &str,
    (name, def_line, what): (&str, &str, &str),
    limits: &FoldLimits,
) -> Result<(FrozenModule, OwnedFrozenValue), String> {
    let rewritten = rewrite_dict_unpacking(source, file).map_err(|e| strip_location(&e))?;
    let ast = AstModule::parse(file, rewritten, &Dialect::Extended).map_err(|e| located(&e))?;
    let globals = globals();
    let module = Module::with_temp_heap(|m| -> Result<FrozenModule, String> {
        {
            let mut eval = Evaluator::new(&m);
            eval.set_max_callstack_size(limits.max_call_depth)
                .map_err(|e| e.to_string())?;
            eval.eval_module(ast, &globals).map_err(|e| located(&e))?;
        }
        m.freeze().map_err(|e| format!("{e:?}"))
    })?;
    let f = module
        .get(name)
        .map_err(|_| format!("{what} must define `{def_line}`"))?;
    let ty = f.value().get_type();
    if ty != "function" {
        return Err(format!(
            "`{name}` must be a function `{def_line}`, got {ty}"
        ));
    }
    Ok((module, f))
}

/// Arms the evaluator's "cancelled" hook for one call of at most `max_steps` steps (Starlark
/// checks it once per [`STEPS_PER_CHECK`]); the count left is 0 when the hook stopped it.
pub(super) fn step_guard(eval: &mut Evaluator<'_, '_, '_>, max_steps: u64) -> Rc<Cell<u64>> {
    let checks_left = Rc::new(Cell::new(max_steps.div_ceil(STEPS_PER_CHECK) + 1));
    let guard = checks_left.clone();
    eval.set_check_cancelled(Box::new(move || {
        let left = guard.get().saturating_sub(1);
        guard.set(left);
        left == 0
    }));
    checks_left
}

pub(super) fn globals() -> Globals {
    // Only the language's standard builtins (no print, no json, no struct extensions),
    // plus the merge helper that `{**x}` is rewritten to.
    GlobalsBuilder::standard().with(merge_globals).build()
}

#[starlark_module]
fn merge_globals(builder: &mut GlobalsBuilder) {
    /// `{**a, "k": v, **b}` == `__refold_merge__((a), {"k": v}, (b))`: a new dict, later keys
    /// win, first insertion order kept, and Python's error for a non-mapping.
    fn __refold_merge__<'v>(
        #[starlark(args)] parts: UnpackTuple<Value<'v>>,
    ) -> starlark::Result<Dict<'v>> {
        let mut out = Dict::default();
        for part in parts.items {
            let dict = DictRef::from_value(part).ok_or_else(|| {
                starlark::Error::new_other(NotAMapping(part.get_type().to_owned()))
            })?;
            for (k, v) in dict.iter_hashed() {
                out.insert_hashed(k, v);
            }
        }
        Ok(out)
    }
}

#[derive(Debug)]
struct NotAMapping(String);

impl fmt::Display for NotAMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' object is not a mapping", self.0)
    }
}

impl std::error::Error for NotAMapping {}

const _: () = assert!(!MERGE_FN.is_empty());

pub use event::StarEvent;

/// The only unsafe code of the fold engine (and starlark's derive macros, which implement
/// its unsafe value traits).
#[allow(unsafe_code)]
mod event {
    use std::ptr::NonNull;

    use super::*;

    /// `event` as the fold sees it: `event.type` is `event_type`, then the envelope's fields,
    /// then `data`'s. Attributes are converted on access, so unused fields cost nothing.
    ///
    /// It points at the caller's envelope instead of owning a copy: copying an envelope
    /// (a dozen strings) cost more than the fold itself. SAFETY: a `StarEvent` is made only
    /// by `StarlarkFold::fold_on_heap` (and `Upcasters::upcast_once`) and lives only on that
    /// call's temporary heap, which is dropped, with every value on it, before the call
    /// returns; the envelopes are borrowed for the whole call. A fold cannot carry an event out: the heap is
    /// never frozen, and every state is checked to be plain JSON after each event.
    #[derive(Debug, ProvidesStaticType, NoSerialize, Allocative)]
    pub struct StarEvent(#[allocative(skip)] NonNull<Envelope>);

    // Starlark heaps are single-threaded; `Send`/`Sync` are required by the value traits only.
    unsafe impl Send for StarEvent {}
    unsafe impl Sync for StarEvent {}

    impl StarEvent {
        /// See the SAFETY note on the type: only for values on a heap dropped before `event`.
        pub(in crate::fold) fn new(event: &Envelope) -> Self {
            Self(NonNull::from(event))
        }

        fn envelope(&self) -> &Envelope {
            // SAFETY: see the type; the envelope outlives every heap this value is on.
            unsafe { self.0.as_ref() }
        }
    }

    starlark_simple_value!(StarEvent);

    impl fmt::Display for StarEvent {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(
                f,
                "event({}, {})",
                self.envelope().event_type(),
                self.envelope().event_id()
            )
        }
    }

    #[starlark_value(type = "event")]
    impl<'v> StarlarkValue<'v> for StarEvent {
        fn get_attr(&self, attr: &str, heap: Heap<'v>) -> Option<Value<'v>> {
            Some(match self.envelope().attr(attr)? {
                Attr::Str(s) => heap.alloc_str(s).to_value(),
                Attr::Int(i) => heap.alloc(i),
                Attr::Json(j) => alloc_json(heap, j),
            })
        }

        fn has_attr(&self, attr: &str, _heap: Heap<'v>) -> bool {
            self.envelope().attr(attr).is_some()
        }

        fn dir_attr(&self) -> Vec<String> {
            let mut names: Vec<String> = std::iter::once("type".to_owned())
                .chain(crate::envelope::FIELDS.iter().map(|f| (*f).to_owned()))
                .collect();
            if let Json::Object(fields) = Json::of(self.envelope().data()) {
                names.extend(fields.iter().map(|(k, _)| k.to_owned()));
            }
            names
        }
    }
}

/// A JSON value of an event as a Starlark value (an object from its fields in document
/// order: a key written twice takes the last value, as in serde_json and Python).
fn alloc_json<'v>(heap: Heap<'v>, j: &json::Value) -> Value<'v> {
    match Json::of(j) {
        Json::Null => Value::new_none(),
        Json::Bool(b) => Value::new_bool(b),
        Json::Int(i) => heap.alloc(i),
        Json::Float(f) => heap.alloc(StarlarkFloat(f)),
        Json::Str(s) => heap.alloc_str(s).to_value(),
        Json::Array(items) => heap.alloc(AllocList(items.iter().map(|x| alloc_json(heap, x)))),
        Json::Object(fields) => heap.alloc(AllocDict(
            fields
                .iter()
                .map(|(k, v)| (heap.alloc_str(k).to_value(), alloc_json(heap, v))),
        )),
    }
}

/// A stored state as a Starlark dict: its text parsed (sonic-rs), then allocated on `heap`.
fn alloc_state<'v>(heap: Heap<'v>, state: &State) -> Result<Value<'v>, FoldError> {
    let doc = state
        .to_json()
        .map_err(|reason| FoldError::new(FoldErrorKind::BadReturn, reason))?;
    Ok(alloc_json(heap, &doc))
}

/// The fold's returned dict as a state: its canonical JSON text, written straight from the
/// Starlark value (the rules and messages of [`to_json`], without building a `Value`).
fn to_state(v: Value<'_>) -> Result<State, FoldError> {
    if DictRef::from_value(v).is_none() {
        return Err(bad_return(format!(
            "fold must return a dict, got {} `{}`",
            v.get_type(),
            short(&v.to_repr())
        )));
    }
    let mut out = Vec::with_capacity(64);
    write_state(v, 0, &mut out)?;
    Ok(State::from_canonical(json::utf8_text(out)))
}

/// Writes `v` as canonical JSON (object keys sorted by their bytes), as
/// `table::row::canonical_json(&to_json(v)?)` would.
fn write_state(v: Value<'_>, depth: usize, out: &mut Vec<u8>) -> Result<(), FoldError> {
    if depth > STATE_DEPTH_MAX {
        return Err(too_deep());
    }
    if v.is_none() {
        out.extend_from_slice(b"null");
    } else if let Some(b) = v.unpack_bool() {
        out.extend_from_slice(if b { b"true" } else { b"false" });
    } else if let Some(s) = v.unpack_str() {
        json::write_serde(s, out);
    } else if let Some(i) = v.unpack_i32() {
        json::write_serde(&i, out);
    } else if let Some(f) = v.downcast_ref::<StarlarkFloat>() {
        json::write_serde(&finite(f.0)?, out);
    } else if v.get_type() == "int" {
        json::write_serde(&big_int(v)?, out);
    } else if let Some(d) = DictRef::from_value(v) {
        write_dict(&d, depth, out)?;
    } else if let Some(l) = ListRef::from_value(v) {
        write_items(l.iter(), depth, out)?;
    } else if let Some(t) = TupleRef::from_value(v) {
        write_items(t.iter(), depth, out)?;
    } else {
        return Err(not_json(v));
    }
    Ok(())
}

/// A dict's entries, keys sorted; the usual state's few fields sorted on the stack.
fn write_dict(d: &DictRef<'_>, depth: usize, out: &mut Vec<u8>) -> Result<(), FoldError> {
    const SMALL: usize = 16;
    let mut small: arrayvec::ArrayVec<(&str, Value<'_>), SMALL> = arrayvec::ArrayVec::new();
    let mut large = Vec::new();
    let entries: &mut [(&str, Value<'_>)] = if d.len() <= SMALL {
        for (k, x) in d.iter() {
            small.push((k.unpack_str().ok_or_else(|| string_keys(k))?, x));
        }
        &mut small
    } else {
        large.reserve_exact(d.len());
        for (k, x) in d.iter() {
            large.push((k.unpack_str().ok_or_else(|| string_keys(k))?, x));
        }
        &mut large
    };
    // Dict keys are distinct: an unstable sort is deterministic here.
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    for (i, (k, x)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::write_serde(*k, out);
        out.push(b':');
        write_state(*x, depth + 1, out)?;
    }
    out.push(b'}');
    Ok(())
}

fn write_items<'v>(
    items: impl Iterator<Item = Value<'v>>,
    depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), FoldError> {
    out.push(b'[');
    for (i, x) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_state(x, depth + 1, out)?;
    }
    out.push(b']');
    Ok(())
}

fn too_deep() -> FoldError {
    bad_return(format!("state nested deeper than {STATE_DEPTH_MAX} levels"))
}

/// `f` if JSON can hold it.
fn finite(f: f64) -> Result<f64, FoldError> {
    if f.is_finite() {
        Ok(f)
    } else {
        Err(bad_return(format!(
            "state holds the float {f}, which JSON cannot represent"
        )))
    }
}

/// A Starlark int as `i64`, if it fits.
fn big_int(v: Value<'_>) -> Result<i64, FoldError> {
    match i64::unpack_value(v) {
        Ok(Some(i)) => Ok(i),
        _ => Err(bad_return(format!(
            "state holds the integer {v}, beyond 64 bits"
        ))),
    }
}

fn string_keys(k: Value<'_>) -> FoldError {
    bad_return(format!(
        "state keys must be strings, got {} `{k}`",
        k.get_type()
    ))
}

fn not_json(v: Value<'_>) -> FoldError {
    bad_return(format!(
        "state holds a {} `{}`, which is not a JSON value",
        v.get_type(),
        short(&v.to_repr())
    ))
}

fn bad_return(message: String) -> FoldError {
    FoldError::new(FoldErrorKind::BadReturn, message)
}

/// `v` as a `serde_json::Value` (an upcaster's returned data); a state is written by
/// [`to_state`] under the same rules.
pub(super) fn to_json(v: Value<'_>, depth: usize) -> Result<serde_json::Value, FoldError> {
    use serde_json::Value as J;
    if depth > STATE_DEPTH_MAX {
        return Err(too_deep());
    }
    if v.is_none() {
        return Ok(J::Null);
    }
    if let Some(b) = v.unpack_bool() {
        return Ok(J::Bool(b));
    }
    if let Some(s) = v.unpack_str() {
        return Ok(J::String(s.to_owned()));
    }
    if let Some(f) = v.downcast_ref::<StarlarkFloat>() {
        let f = finite(f.0)?;
        return Ok(serde_json::Number::from_f64(f).map_or(J::Null, J::Number));
    }
    if v.get_type() == "int" {
        return big_int(v).map(J::from);
    }
    if let Some(d) = DictRef::from_value(v) {
        let mut m = serde_json::Map::new();
        for (k, x) in d.iter() {
            let k = k.unpack_str().ok_or_else(|| string_keys(k))?;
            m.insert(k.to_owned(), to_json(x, depth + 1)?);
        }
        return Ok(J::Object(m));
    }
    let items: Option<Vec<Value>> = ListRef::from_value(v)
        .map(|l| l.iter().collect())
        .or_else(|| TupleRef::from_value(v).map(|t| t.iter().collect()));
    if let Some(items) = items {
        return items
            .into_iter()
            .map(|x| to_json(x, depth + 1))
            .collect::<Result<_, _>>()
            .map(J::Array);
    }
    Err(not_json(v))
}

/// Checks, without building or writing anything, that `v` converts to JSON (see
/// [`to_json`]): a returned state is checked after every event.
fn check_json(v: Value<'_>, depth: usize) -> Result<(), FoldError> {
    if depth > STATE_DEPTH_MAX {
        return Err(too_deep());
    }
    if v.is_none()
        || v.unpack_bool().is_some()
        || v.unpack_str().is_some()
        || v.unpack_i32().is_some()
    {
        return Ok(());
    }
    if let Some(d) = DictRef::from_value(v) {
        for (k, x) in d.iter() {
            k.unpack_str().ok_or_else(|| string_keys(k))?;
            check_json(x, depth + 1)?;
        }
        return Ok(());
    }
    if let Some(l) = ListRef::from_value(v) {
        return l.iter().try_for_each(|x| check_json(x, depth + 1));
    }
    if let Some(t) = TupleRef::from_value(v) {
        return t.iter().try_for_each(|x| check_json(x, depth + 1));
    }
    if let Some(f) = v.downcast_ref::<StarlarkFloat>() {
        return finite(f.0).map(|_| ());
    }
    if v.get_type() == "int" {
        return big_int(v).map(|_| ());
    }
    Err(not_json(v))
}

fn short(s: &str) -> String {
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s.to_owned()
    }
}

pub(super) fn is_stack_overflow(e: &starlark::Error) -> bool {
    let text = e.without_diagnostic().to_string();
    text.contains("call stack") || text.contains("Starlark call stack overflow")
}

/// The message of a Starlark error, prefixed with `line N: ` when it has a location.
pub(super) fn located(e: &starlark::Error) -> String {
    let message = e.without_diagnostic().to_string();
    match e.span() {
        Some(span) => format!("line {}: {message}", span.resolve_span().begin.line + 1),
        None => message,
    }
}

/// Lexer errors come with the codemap's text in them; keep the message.
pub(super) fn strip_location(e: &str) -> String {
    e.lines().next().unwrap_or(e).to_owned()
}

pub(super) fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned())
}
