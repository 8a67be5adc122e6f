//! Upcasters: a pipeline's Starlark functions that turn an old event shape into the
//! current one before the fold sees it (`upcasters:` of a transformation). Live folds,
//! replays and `refold history` all decode through [`Upcasters::apply`], so a fold is
//! written against the current shape only, and the archive keeps events as they were
//! produced.
//!
//! An upcaster of (`event_type`, `from_version`) defines `def upcast(event):` and returns
//! the `data` of version `from_version + 1`; `event` is what the fold sees. Steps chain
//! (v1 -> v2 -> v3), at most [`MAX_STEPS`] per event.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use starlark::environment::{FrozenModule, Module};
use starlark::eval::Evaluator;
use starlark::values::OwnedFrozenValue;
use starlark::values::dict::DictRef;

use super::starlark::{
    StarEvent, compile_function, is_stack_overflow, located, panic_message, step_guard, to_json,
};
use crate::envelope::Envelope;
use crate::pipeline::{FoldLimits, Upcaster};

/// Most upcasts one event goes through (a chain longer than this is a loop in the versions).
pub const MAX_STEPS: usize = 32;

/// One compiled `upcast(event)`.
struct Compiled {
    _module: FrozenModule,
    upcast: OwnedFrozenValue,
}

/// A transformation's compiled upcasters, by (event type, version).
#[derive(Default)]
pub struct Upcasters {
    by_type: HashMap<(String, i64), Compiled>,
    limits: FoldLimits,
}

impl std::fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<_> = self.by_type.keys().collect();
        keys.sort();
        f.debug_struct("Upcasters").field("steps", &keys).finish()
    }
}

impl Upcasters {
    /// Compiles each upcaster; an error names the event type and version, and starts with
    /// `line N: ` (in the function's own source) when it has a location.
    pub fn compile(upcasters: &[Upcaster], limits: &FoldLimits) -> Result<Self, String> {
        let mut by_type = HashMap::with_capacity(upcasters.len());
        for u in upcasters {
            let compiled = compile_one(&u.source, limits)?;
            by_type.insert((u.event_type.clone(), u.from_version), compiled);
        }
        Ok(Self {
            by_type,
            limits: *limits,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.by_type.is_empty()
    }

    /// The envelope in its current shape: every upcaster of its (type, version) applied in
    /// turn. An envelope no upcaster matches is returned as is (no work beyond one lookup).
    pub fn apply(&self, mut envelope: Envelope) -> Result<Envelope, String> {
        if self.by_type.is_empty() {
            return Ok(envelope);
        }
        for _ in 0..MAX_STEPS {
            let key = (envelope.event_type().to_owned(), envelope.version());
            let Some(step) = self.by_type.get(&key) else {
                return Ok(envelope);
            };
            let data = self
                .upcast_once(step, &envelope)
                .map_err(|e| format!("upcaster of `{}` version {}: {e}", key.0, key.1))?;
            envelope = envelope
                .with_data(&data, key.1 + 1)
                .map_err(|e| format!("upcaster of `{}` version {}: {e}", key.0, key.1))?;
        }
        Err(format!(
            "`{}` went through {MAX_STEPS} upcasters and is still not current",
            envelope.event_type()
        ))
    }

    /// Runs one `upcast(event)` on a temporary heap under the fold's limits.
    fn upcast_once(
        &self,
        step: &Compiled,
        envelope: &Envelope,
    ) -> Result<serde_json::Value, String> {
        Module::with_temp_heap(|m| {
            let heap = m.heap();
            let upcast = m.frozen_heap().alloc(step.upcast.clone()).to_value();
            let mut eval = Evaluator::new(&m);
            let heap_limit = usize::try_from(self.limits.max_heap_bytes).unwrap_or(usize::MAX);
            // Fail only on a zero limit, which validation forbids.
            let _ = eval.set_max_callstack_size(self.limits.max_call_depth.max(1));
            let _ = eval.set_max_heap_size(heap_limit.max(1));
            // Stops a runaway upcaster in flight, as the fold's guard does.
            let checks = step_guard(&mut eval, self.limits.max_steps_per_event);
            let event = heap.alloc(StarEvent::new(envelope));
            let result = catch_unwind(AssertUnwindSafe(|| {
                eval.eval_function(upcast, &[event], &[])
            }));
            let steps = eval.get_total_tick_count();
            if checks.get() == 0 || steps > self.limits.max_steps_per_event {
                return Err(format!(
                    "step limit exceeded: more than {} steps",
                    self.limits.max_steps_per_event
                ));
            }
            let v = match result {
                Err(panic) => {
                    return Err(format!(
                        "the interpreter gave up: {}",
                        panic_message(&panic)
                    ));
                }
                Ok(Err(e)) if is_stack_overflow(&e) => {
                    return Err(format!(
                        "call depth limit of {} exceeded",
                        self.limits.max_call_depth
                    ));
                }
                Ok(Err(e)) => return Err(located(&e)),
                Ok(Ok(v)) => v,
            };
            if heap.peak_allocated_bytes() > heap_limit {
                return Err(format!(
                    "heap limit exceeded: more than {} bytes",
                    self.limits.max_heap_bytes
                ));
            }
            if DictRef::from_value(v).is_none() {
                return Err(format!(
                    "upcast must return a dict (the new data), got {}",
                    v.get_type()
                ));
            }
            to_json(v, 0).map_err(|e| e.message)
        })
    }
}

fn compile_one(source: &str, limits: &FoldLimits) -> Result<Compiled, String> {
    let (module, upcast) = compile_function(
        source,
        "upcast",
        ("upcast", "def upcast(event):", "the upcaster"),
        limits,
    )?;
    Ok(Compiled {
        _module: module,
        upcast,
    })
}
