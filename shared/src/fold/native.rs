//! Folds written in Rust. `OrderFold` is the seed's order fold, written natively: the
//! reference the Starlark run of the seed's `fold_function` is tested against, and the
//! baseline for the fold benchmark. `LlmOpsFold` (`llm_ops`) is the example pipeline
//! `pipelines/examples/llm-ops-pipeline.yaml`'s, with typed columns. Select one in a pipeline
//! with `fold_native: <name>`.

mod llm_ops;

use std::borrow::Cow;

use super::{DynFold, Fold, FoldError, FoldErrorKind, StateMap};
use crate::envelope::{Attr, Envelope};
use crate::json;

/// Names accepted by `fold_native:`.
pub const NAMES: &[&str] = &["order", "llm_ops"];

pub use llm_ops::{LlmOpsFold, LlmOpsState};

pub fn by_name(name: &str) -> Option<Box<dyn DynFold>> {
    match name {
        "order" => Some(Box::new(OrderFold)),
        "llm_ops" => Some(Box::new(LlmOpsFold)),
        _ => None,
    }
}

/// The seed's fold:
/// ```python
/// def fold(state, event):
///     if event.type == "OrderPlaced":
///         return {"status": "placed", "amount": event.amount}
///     elif event.type == "OrderCancelled":
///         return {**state, "status": "cancelled"}
///     return {**state, "status": event.type.lower().replace("order", "")}
/// ```
pub struct OrderFold;

/// The order state. `amount` keeps the event's JSON value as it was (number, string or
/// null), exactly as the Python fold would.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderState {
    pub status: Option<Cow<'static, str>>,
    pub amount: Option<serde_json::Value>,
    /// Fields of a prior state this fold does not know; `{**state}` keeps them.
    pub rest: StateMap,
}

impl Fold for OrderFold {
    type State = OrderState;

    fn apply(&self, state: &mut OrderState, event: &Envelope) -> Result<(), FoldError> {
        match event.event_type() {
            "OrderPlaced" => {
                let amount = match event.attr("amount") {
                    Some(Attr::Json(j)) => json::to_value(j),
                    Some(Attr::Int(i)) => serde_json::Value::from(i),
                    Some(Attr::Str(s)) => serde_json::Value::from(s),
                    None => {
                        return Err(FoldError::new(
                            FoldErrorKind::Raised,
                            "line 4: Object of type `event` has no attribute `amount`",
                        ));
                    }
                };
                *state = OrderState {
                    status: Some(Cow::Borrowed("placed")),
                    amount: Some(amount),
                    rest: StateMap::new(),
                };
            }
            "OrderCancelled" => state.status = Some(Cow::Borrowed("cancelled")),
            "OrderConfirmed" => state.status = Some(Cow::Borrowed("confirmed")),
            "OrderShipped" => state.status = Some(Cow::Borrowed("shipped")),
            "OrderDelivered" => state.status = Some(Cow::Borrowed("delivered")),
            other => state.status = Some(Cow::Owned(other.to_lowercase().replace("order", ""))),
        }
        Ok(())
    }

    fn decode_state(&self, json: &StateMap) -> Result<OrderState, FoldError> {
        let mut rest = json.clone();
        let status = match rest.remove("status") {
            None => None,
            Some(serde_json::Value::String(s)) => Some(Cow::Owned(s)),
            Some(other) => {
                // Not produced by this fold: keep it verbatim among the other fields.
                rest.insert("status".to_owned(), other);
                None
            }
        };
        let amount = rest.remove("amount");
        Ok(OrderState {
            status,
            amount,
            rest,
        })
    }

    fn encode_state(&self, state: &OrderState) -> StateMap {
        let mut out = state.rest.clone();
        if let Some(s) = &state.status {
            out.insert(
                "status".to_owned(),
                serde_json::Value::String(s.to_string()),
            );
        }
        if let Some(a) = &state.amount {
            out.insert("amount".to_owned(), a.clone());
        }
        out
    }
}
