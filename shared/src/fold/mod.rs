//! The fold engine: applies a pipeline's fold function to each key's events, in order.
//!
//! Two kinds of fold share one interface ([`FoldProgram`]):
//! - a Starlark fold (`fold_function` in the pipeline file, Python syntax as in the seed),
//!   run by [`starlark::StarlarkFold`] with limits on steps, heap and call depth;
//! - a native fold written in Rust, implementing [`Fold`] (see [`native`]).
//!
//! Invariants: the engine does no I/O and is deterministic (the same prior state and events
//! give byte-identical state); a failing event is a per-event error that leaves the key's
//! state as it was before that event, never a crash of the batch.

pub mod native;
pub mod rewrite;
pub mod starlark;
pub mod state;
pub mod upcast;

use std::fmt;

use crate::envelope::Envelope;
use crate::pipeline::{FoldLimits, FoldSource};

pub use state::{State, StateMap};

/// Why one event could not be folded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FoldErrorKind {
    /// The fold raised an error (a failed lookup, a type error, `fail(...)`).
    Raised,
    /// The fold ran past a limit on steps, heap or call depth.
    LimitExceeded,
    /// The fold returned something other than a dict of JSON values.
    BadReturn,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldError {
    pub kind: FoldErrorKind,
    pub message: String,
}

impl FoldError {
    pub fn new(kind: FoldErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for FoldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FoldError {}

/// A fold written in Rust.
///
/// `apply` folds one event onto the state in place. Contract: on `Err`, `state` is left
/// exactly as it was (the event is set aside and the key goes on without it).
pub trait Fold: Send + Sync + 'static {
    type State: Default + Send;
    fn apply(&self, state: &mut Self::State, event: &Envelope) -> Result<(), FoldError>;
    /// Reads a stored state back (the table keeps states as JSON objects).
    fn decode_state(&self, json: &StateMap) -> Result<Self::State, FoldError>;
    fn encode_state(&self, state: &Self::State) -> StateMap;
}

/// One key's work in a batch: its state before the batch and its events in offset order.
pub struct KeyEvents<'b> {
    pub prior: Option<&'b State>,
    pub events: &'b [&'b Envelope],
}

/// One key's result: the state after the batch (None if the key had no prior state and no
/// event applied) and the events that failed, by index into [`KeyEvents::events`].
#[derive(Debug, Clone, PartialEq)]
pub struct KeyFolded {
    pub state: Option<State>,
    pub applied: usize,
    pub errors: Vec<(usize, FoldError)>,
}

/// Object-safe form of [`Fold`], so a pipeline can hold any native fold.
pub trait DynFold: Send + Sync {
    fn fold_key(&self, key: &KeyEvents<'_>) -> KeyFolded;
}

impl<F: Fold> DynFold for F {
    fn fold_key(&self, key: &KeyEvents<'_>) -> KeyFolded {
        let mut state = match key.prior {
            Some(json) => match json
                .to_map()
                .map_err(|reason| FoldError::new(FoldErrorKind::BadReturn, reason))
                .and_then(|m| self.decode_state(&m))
            {
                Ok(s) => s,
                Err(e) => {
                    // A stored state this fold cannot read: every event of the key fails
                    // with the reason, and the stored state is kept as it is.
                    let errors = (0..key.events.len()).map(|i| (i, e.clone())).collect();
                    return KeyFolded {
                        state: Some(json.clone()),
                        applied: 0,
                        errors,
                    };
                }
            },
            None => F::State::default(),
        };
        let mut applied = 0;
        let mut errors = Vec::new();
        for (i, event) in key.events.iter().enumerate() {
            match self.apply(&mut state, event) {
                Ok(()) => applied += 1,
                Err(e) => errors.push((i, e)),
            }
        }
        let state = (applied > 0 || key.prior.is_some())
            .then(|| State::from_map(&self.encode_state(&state)));
        KeyFolded {
            state,
            applied,
            errors,
        }
    }
}

/// A pipeline's fold, compiled once (per Lambda container) and used for every batch.
pub enum FoldProgram {
    Starlark(starlark::StarlarkFold),
    Native(Box<dyn DynFold>),
}

impl FoldProgram {
    /// Compiles the fold a transformation names.
    pub fn compile(source: &FoldSource, limits: &FoldLimits) -> Result<Self, String> {
        match source {
            FoldSource::Starlark { source, .. } => {
                starlark::StarlarkFold::compile(source, limits).map(FoldProgram::Starlark)
            }
            FoldSource::Native { name } => native::by_name(name)
                .map(FoldProgram::Native)
                .ok_or_else(|| {
                    format!(
                        "unknown native fold `{name}` (known: {})",
                        native::NAMES.join(", ")
                    )
                }),
        }
    }

    /// Folds each key's events onto its prior state; results are in the order of `keys`.
    pub fn fold_keys(&self, keys: &[KeyEvents<'_>]) -> Vec<KeyFolded> {
        let out = match self {
            FoldProgram::Starlark(f) => f.fold_keys(keys),
            FoldProgram::Native(f) => keys.iter().map(|k| f.fold_key(k)).collect(),
        };
        assert_eq!(out.len(), keys.len(), "one result per key");
        out
    }
}

/// Checks that an upcaster compiles and defines `upcast(event)` (errors as for
/// [`check_starlark_source`]).
pub fn check_upcast_source(source: &str) -> Result<(), String> {
    let u = crate::pipeline::Upcaster {
        event_type: String::new(),
        from_version: 1,
        source: source.to_owned(),
        line: 0,
    };
    upcast::Upcasters::compile(std::slice::from_ref(&u), &FoldLimits::default()).map(|_| ())
}

/// Checks that a Starlark fold compiles and defines `fold(state, event)`.
/// On failure the message starts with `line N: ` (1-based, in the fold's own source) when
/// the problem has a location, so callers can map it into the pipeline file.
pub fn check_starlark_source(source: &str) -> Result<(), String> {
    starlark::StarlarkFold::compile(source, &FoldLimits::default()).map(|_| ())
}
