//! A key's state as refold keeps it: the JSON text of an object.
//!
//! Rows read from the state table, rows written to it and the Starlark fold's input and
//! output all hold this text, so a state costs one allocation however many fields it has.
//! A `serde_json::Map` ([`StateMap`]) is built only where one is asked for: native folds,
//! typed state columns, output. refold writes states canonically (keys sorted by their
//! bytes, no whitespace, numbers and strings as serde_json writes them:
//! [`crate::table::row::canonical_json`]), so equal states it wrote are equal bytes; text read
//! from a table is kept as stored, after checking that it is a JSON object.

use std::fmt;

use sonic_rs::JsonValueTrait;

use crate::json;

/// A state as a `serde_json` object, for code that reads fields by name.
pub type StateMap = serde_json::Map<String, serde_json::Value>;

/// The JSON text of an object (see the module doc). Always a valid JSON object.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct State(Box<str>);

impl State {
    /// Checks that `text` is a JSON object and keeps it. The check builds nothing (serde_json
    /// reads the text through and ignores it): every prior row of a merge passes here, and
    /// the fold parses it again. (A state refold's reader refuses, nested deeper than
    /// [`json::MAX_DEPTH`] or with a number beyond `f64`, passes here and fails in the fold,
    /// for its key only.)
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
            return Err(format!("not JSON: {e}"));
        }
        match text.trim_start().as_bytes().first() {
            Some(b'{') => Ok(Self(text.into())),
            _ => Err(format!("not a JSON object: {text:.40}")),
        }
    }

    /// The canonical text of `m`.
    pub fn from_map(m: &StateMap) -> Self {
        Self(crate::table::row::canonical_object(m).into_boxed_str())
    }

    /// Text the caller wrote as a canonical JSON object (the Starlark fold's writer).
    pub(crate) fn from_canonical(text: String) -> Self {
        debug_assert!(
            json::parse(text.as_bytes()).is_ok_and(|v| v.is_object()),
            "not a JSON object: {text}"
        );
        Self(text.into_boxed_str())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The state parsed (sonic-rs, as refold reads JSON).
    pub fn to_json(&self) -> Result<json::Value, String> {
        json::parse(self.0.as_bytes()).map_err(|e| format!("stored state is not JSON: {e}"))
    }

    /// The state as a `serde_json` object.
    pub fn to_map(&self) -> Result<StateMap, String> {
        match serde_json::from_str(&self.0) {
            Ok(serde_json::Value::Object(m)) => Ok(m),
            Ok(other) => Err(format!("stored state is not a JSON object: {other}")),
            Err(e) => Err(format!("stored state is not JSON: {e}")),
        }
    }

    /// The state as a `serde_json::Value` (an object; `null` if it could not be read,
    /// which [`State::parse`] rules out).
    pub fn to_value(&self) -> serde_json::Value {
        self.to_map()
            .map_or(serde_json::Value::Null, serde_json::Value::Object)
    }
}

/// `{}`.
impl Default for State {
    fn default() -> Self {
        Self("{}".into())
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Serialized as the JSON object it is (its text embedded as is by serde_json).
impl serde::Serialize for State {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw: &serde_json::value::RawValue =
            serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

/// Read from a JSON object (serde_json only: the text is taken as written, then checked).
impl<'de> serde::Deserialize<'de> for State {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        State::parse(raw.get()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_keeps_objects_and_names_what_else_it_got() {
        assert_eq!(
            State::parse(r#"{"b":1,"a":"x"}"#).unwrap().as_str(),
            r#"{"b":1,"a":"x"}"#
        );
        assert_eq!(State::parse("[1]").unwrap_err(), "not a JSON object: [1]");
        assert!(State::parse("{").unwrap_err().starts_with("not JSON: "));
    }

    #[test]
    fn from_map_writes_sorted_keys() {
        let m: StateMap = serde_json::from_str(r#"{"z":{"b":2,"a":1.5},"a":[true,null]}"#).unwrap();
        let want = r#"{"a":[true,null],"z":{"a":1.5,"b":2}}"#;
        assert_eq!(State::from_map(&m).as_str(), want);
        assert_eq!(State::default().as_str(), "{}");
    }

    #[test]
    fn serializes_as_the_object_it_holds() {
        let s = State::parse(r#"{"status":"placed","amount":848.34}"#).unwrap();
        let row = serde_json::json!({ "key": "k", "state": s });
        assert_eq!(
            row.to_string(),
            r#"{"key":"k","state":{"amount":848.34,"status":"placed"}}"#
        );
        assert_eq!(
            s.to_value(),
            serde_json::json!({"status": "placed", "amount": 848.34})
        );
    }
}
