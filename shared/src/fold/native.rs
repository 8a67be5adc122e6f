//! Folds written in Rust. `OrderFold` is the seed's order fold, written natively: the
//! reference the Starlark run of the seed's `fold_function` is tested against, and the
//! baseline for the fold benchmark. Select one in a pipeline with `fold_native: <name>`.

use super::{DynFold, Fold, FoldError, FoldErrorKind, State};
use crate::envelope::{Attr, Envelope};

/// Names accepted by `fold_native:`.
pub const NAMES: &[&str] = &["order"];

pub fn by_name(name: &str) -> Option<Box<dyn DynFold>> {
    match name {
        "order" => Some(Box::new(OrderFold)),
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
    pub status: Option<String>,
    pub amount: Option<serde_json::Value>,
    /// Fields of a prior state this fold does not know; `{**state}` keeps them.
    pub rest: State,
}

impl Fold for OrderFold {
    type State = OrderState;

    fn apply(&self, state: &mut OrderState, event: &Envelope<'_>) -> Result<(), FoldError> {
        match &*event.event_type {
            "OrderPlaced" => {
                let amount = match event.attr("amount") {
                    Some(Attr::Json(j)) => j.to_value(),
                    Some(Attr::Int(i)) => serde_json::Value::from(i),
                    Some(Attr::Str(s)) => serde_json::Value::from(s),
                    None => {
                        return Err(FoldError::new(
                            FoldErrorKind::Raised,
                            "line 4: Object of type `event` has no attribute `amount`",
                        ));
                    }
                };
                *state = OrderState { status: Some("placed".to_owned()), amount: Some(amount), rest: State::new() };
            }
            "OrderCancelled" => state.status = Some("cancelled".to_owned()),
            other => state.status = Some(other.to_lowercase().replace("order", "")),
        }
        Ok(())
    }

    fn decode_state(&self, json: &State) -> Result<OrderState, FoldError> {
        let mut rest = json.clone();
        let status = match rest.remove("status") {
            None => None,
            Some(serde_json::Value::String(s)) => Some(s),
            Some(other) => {
                // Not produced by this fold: keep it verbatim among the other fields.
                rest.insert("status".to_owned(), other);
                None
            }
        };
        let amount = rest.remove("amount");
        Ok(OrderState { status, amount, rest })
    }

    fn encode_state(&self, state: &OrderState) -> State {
        let mut out = state.rest.clone();
        if let Some(s) = &state.status {
            out.insert("status".to_owned(), serde_json::Value::String(s.clone()));
        }
        if let Some(a) = &state.amount {
            out.insert("amount".to_owned(), a.clone());
        }
        out
    }
}
