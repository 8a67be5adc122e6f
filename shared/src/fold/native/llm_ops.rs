//! `fold_native: llm_ops`: per-agent aggregates of the platform's `matih.ai.llm-ops` topic
//! (one `LlmCallCompleted` event per LLM call), for a pipeline with typed columns
//! (`pipelines/examples/llm-ops-pipeline.yaml`).
//!
//! Per event (every check before any change, so a rejected event leaves the state as it was):
//! - `status` must be `ok`, `error` or `rate_limited`; `model` a string; `tokens_in`,
//!   `tokens_out` and `latency_ms` non-negative integers; `cost_usd` a non-negative number.
//!   Otherwise the event is rejected with `invalid LLM call <call_id or event_id>: <why>`.
//! - `calls` + 1; `errors` + 1 unless `ok`; `rate_limited` + 1 when `rate_limited`;
//!   `cache_hits` + 1 when `cache_hit` is `true`; `tokens_in`, `tokens_out` and `cost_usd`
//!   summed (a total past 64 bits, or a cost past f64, rejects the event);
//!   `models`: calls per model, at most [`MAX_MODELS`] names, later ones counted as `other`;
//!   `last_model` and `last_ok` (status `ok`) from this event;
//!   `first_call_at`/`last_call_at`: the earliest and latest event time, in UTC.
//! - Latency: `latency_hist` counts calls per bucket of [`BOUNDS_MS`] (a latency goes in the
//!   first bucket whose upper bound is at least it; one more bucket holds the rest), and
//!   `latency_max_ms` the largest. `latency_p50_ms`/`p95`/`p99`: the nearest-rank sample
//!   (rank = ceil(p * calls / 100)) is in some bucket; the percentile is that bucket's upper
//!   bound capped by `latency_max_ms` (for the last bucket: `latency_max_ms`). Integers only:
//!   the state is bounded whatever the number of calls, and the same on every run.
//!
//! `tests/py/examples_oracle.py` re-states this in Python, independently of this code.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::envelope::{Attr, Envelope, parse_rfc3339_us};
use crate::fold::{Fold, FoldError, FoldErrorKind, StateMap};
use crate::json::Json;

/// Upper bounds (ms) of the latency buckets; one more bucket holds everything above.
pub const BOUNDS_MS: [i64; 12] = [
    10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
];

/// Distinct model names kept in `models`; later ones are counted as `other`.
pub const MAX_MODELS: usize = 16;

const BUCKETS: usize = BOUNDS_MS.len() + 1;

pub struct LlmOpsFold;

/// The aggregate of one agent. Encoded as the typed columns of the example pipeline.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LlmOpsState {
    pub calls: i64,
    pub errors: i64,
    pub rate_limited: i64,
    pub cache_hits: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_usd: f64,
    pub latency_hist: [i64; BUCKETS],
    pub latency_max_ms: i64,
    pub models: BTreeMap<String, i64>,
    pub last_model: String,
    pub last_ok: bool,
    /// Microseconds since the epoch, UTC; meaningful once `calls > 0`.
    pub first_call_us: i64,
    pub last_call_us: i64,
}

impl LlmOpsState {
    /// The `p`th percentile of the latencies (see the module's documentation).
    pub fn percentile(&self, p: i64) -> i64 {
        let rank = (p * self.calls + 99) / 100;
        let mut seen = 0;
        for (i, n) in self.latency_hist.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return BOUNDS_MS
                    .get(i)
                    .map_or(self.latency_max_ms, |b| (*b).min(self.latency_max_ms));
            }
        }
        self.latency_max_ms
    }
}

fn invalid(call: &str, why: impl std::fmt::Display) -> FoldError {
    FoldError::new(
        FoldErrorKind::Raised,
        format!("invalid LLM call {call}: {why}"),
    )
}

fn json_attr<'e>(event: &'e Envelope, name: &str) -> Option<Json<'e>> {
    match event.attr(name)? {
        Attr::Json(j) => Some(Json::of(j)),
        // Only envelope fields are `Str`/`Int`; none of this fold's names is one.
        Attr::Str(_) | Attr::Int(_) => None,
    }
}

fn count(event: &Envelope, call: &str, name: &str) -> Result<i64, FoldError> {
    match json_attr(event, name) {
        Some(Json::Int(i)) if i >= 0 => Ok(i),
        Some(Json::Int(i)) => Err(invalid(
            call,
            format!("`{name}` must be a non-negative integer, got {i}"),
        )),
        Some(other) => Err(invalid(
            call,
            format!(
                "`{name}` must be a non-negative integer, got {}",
                other.kind()
            ),
        )),
        None => Err(invalid(call, format!("`{name}` is missing"))),
    }
}

fn bucket(ms: i64) -> usize {
    BOUNDS_MS
        .iter()
        .position(|b| ms <= *b)
        .unwrap_or(BOUNDS_MS.len())
}

impl Fold for LlmOpsFold {
    type State = LlmOpsState;

    fn apply(&self, state: &mut LlmOpsState, event: &Envelope) -> Result<(), FoldError> {
        let call = match json_attr(event, "call_id") {
            Some(Json::Str(s)) => s,
            _ => event.event_id(),
        };
        let status = match json_attr(event, "status") {
            Some(Json::Str(s @ ("ok" | "error" | "rate_limited"))) => s,
            Some(Json::Str(s)) => return Err(invalid(call, format!("unknown status `{s}`"))),
            _ => return Err(invalid(call, "`status` must be a string")),
        };
        let model = match json_attr(event, "model") {
            Some(Json::Str(s)) => s,
            _ => return Err(invalid(call, "`model` must be a string")),
        };
        let tokens_in = count(event, call, "tokens_in")?;
        let tokens_out = count(event, call, "tokens_out")?;
        let latency = count(event, call, "latency_ms")?;
        let cost = match json_attr(event, "cost_usd") {
            Some(Json::Int(i)) if i >= 0 => i as f64,
            Some(Json::Float(f)) if f >= 0.0 => f,
            _ => {
                return Err(invalid(call, "`cost_usd` must be a non-negative number"));
            }
        };
        let cache_hit = matches!(json_attr(event, "cache_hit"), Some(Json::Bool(true)));
        let tokens_in = state
            .tokens_in
            .checked_add(tokens_in)
            .ok_or_else(|| invalid(call, "`tokens_in` total past 64 bits"))?;
        let tokens_out = state
            .tokens_out
            .checked_add(tokens_out)
            .ok_or_else(|| invalid(call, "`tokens_out` total past 64 bits"))?;
        let cost_usd = state.cost_usd + cost;
        if !cost_usd.is_finite() {
            return Err(invalid(call, "`cost_usd` total past a double"));
        }

        // Checked: from here on nothing fails.
        let at = event.timestamp_us();
        // A new key has no times yet: the first call sets both.
        let (first_us, last_us) = if state.calls == 0 {
            (at, at)
        } else {
            (state.first_call_us.min(at), state.last_call_us.max(at))
        };
        state.calls += 1;
        state.errors += i64::from(status != "ok");
        state.rate_limited += i64::from(status == "rate_limited");
        state.cache_hits += i64::from(cache_hit);
        state.tokens_in = tokens_in;
        state.tokens_out = tokens_out;
        state.cost_usd = cost_usd;
        state.latency_hist[bucket(latency)] += 1;
        state.latency_max_ms = state.latency_max_ms.max(latency);
        let name = if state.models.contains_key(model) || state.models.len() < MAX_MODELS {
            model
        } else {
            "other"
        };
        *state.models.entry(name.to_owned()).or_insert(0) += 1;
        state.last_model = model.to_owned();
        state.last_ok = status == "ok";
        state.first_call_us = first_us;
        state.last_call_us = last_us;
        Ok(())
    }

    fn decode_state(&self, json: &StateMap) -> Result<LlmOpsState, FoldError> {
        let bad = |field: &str, v: &Value| {
            FoldError::new(
                FoldErrorKind::BadReturn,
                format!("stored llm_ops state: `{field}` is {v}, not what this fold writes"),
            )
        };
        let long = |field: &str| match json.get(field) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => v.as_i64().ok_or_else(|| bad(field, v)),
        };
        let time = |field: &str| match json.get(field) {
            None | Some(Value::Null) => Ok(0),
            Some(Value::String(s)) => {
                parse_rfc3339_us(s).map_err(|_| bad(field, &Value::String(s.clone())))
            }
            Some(v) => Err(bad(field, v)),
        };
        let mut latency_hist = [0; BUCKETS];
        match json.get("latency_hist") {
            None | Some(Value::Null) => {}
            Some(Value::Array(a)) if a.len() == BUCKETS => {
                for (slot, v) in latency_hist.iter_mut().zip(a) {
                    *slot = v.as_i64().ok_or_else(|| bad("latency_hist", v))?;
                }
            }
            Some(v) => return Err(bad("latency_hist", v)),
        }
        let mut models = BTreeMap::new();
        match json.get("models") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    models.insert(k.clone(), v.as_i64().ok_or_else(|| bad("models", v))?);
                }
            }
            Some(v) => return Err(bad("models", v)),
        }
        let cost_usd = match json.get("cost_usd") {
            None | Some(Value::Null) => 0.0,
            Some(v) => v.as_f64().ok_or_else(|| bad("cost_usd", v))?,
        };
        let last_model = match json.get("last_model") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => return Err(bad("last_model", v)),
        };
        let last_ok = match json.get("last_ok") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => return Err(bad("last_ok", v)),
        };
        Ok(LlmOpsState {
            calls: long("calls")?,
            errors: long("errors")?,
            rate_limited: long("rate_limited")?,
            cache_hits: long("cache_hits")?,
            tokens_in: long("tokens_in")?,
            tokens_out: long("tokens_out")?,
            cost_usd,
            latency_hist,
            latency_max_ms: long("latency_max_ms")?,
            models,
            last_model,
            last_ok,
            first_call_us: time("first_call_at")?,
            last_call_us: time("last_call_at")?,
        })
    }

    fn encode_state(&self, s: &LlmOpsState) -> StateMap {
        let mut out = StateMap::new();
        if s.calls == 0 {
            return out; // never happens for a stored key: a key exists once a call folded
        }
        let mut put = |k: &str, v: Value| {
            out.insert(k.to_owned(), v);
        };
        put("calls", s.calls.into());
        put("errors", s.errors.into());
        put("rate_limited", s.rate_limited.into());
        put("cache_hits", s.cache_hits.into());
        put("tokens_in", s.tokens_in.into());
        put("tokens_out", s.tokens_out.into());
        // Finite: `apply` refuses a total that is not.
        put(
            "cost_usd",
            serde_json::Number::from_f64(s.cost_usd).map_or(Value::Null, Value::Number),
        );
        put(
            "latency_hist",
            Value::Array(s.latency_hist.iter().map(|n| (*n).into()).collect()),
        );
        put("latency_max_ms", s.latency_max_ms.into());
        put("latency_p50_ms", s.percentile(50).into());
        put("latency_p95_ms", s.percentile(95).into());
        put("latency_p99_ms", s.percentile(99).into());
        put(
            "models",
            Value::Object(
                s.models
                    .iter()
                    .map(|(k, v)| (k.clone(), (*v).into()))
                    .collect(),
            ),
        );
        put("last_model", Value::String(s.last_model.clone()));
        put("last_ok", Value::Bool(s.last_ok));
        put("first_call_at", rfc3339(s.first_call_us));
        put("last_call_at", rfc3339(s.last_call_us));
        out
    }
}

/// A time as the table's timestamp columns read back (UTC, `Z`, 0, 3 or 6 fraction digits),
/// so a state read from the table equals the one written.
fn rfc3339(us: i64) -> Value {
    chrono::DateTime::from_timestamp_micros(us).map_or(Value::Null, |t| {
        Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latencies_up_to(latency: i64) -> LlmOpsState {
        let mut s = LlmOpsState::default();
        for ms in 1..=latency {
            s.calls += 1;
            s.latency_hist[bucket(ms)] += 1;
            s.latency_max_ms = s.latency_max_ms.max(ms);
        }
        s
    }

    #[test]
    fn percentiles_are_nearest_rank_bucket_bounds_capped_by_the_max() {
        // 1..=100 ms: 10 in [0,10], 15 in (10,25], 25 in (25,50], 50 in (50,100].
        let s = latencies_up_to(100);
        assert_eq!(
            (s.percentile(50), s.percentile(95), s.percentile(99)),
            (50, 100, 100)
        );
        let s = latencies_up_to(60);
        assert_eq!((s.percentile(10), s.percentile(99)), (10, 60));
        assert_eq!(bucket(60_001), BOUNDS_MS.len());
    }
}
