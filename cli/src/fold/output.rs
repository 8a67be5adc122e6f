//! One output line of `refold fold`: a row as a JSON object with sorted keys, written
//! straight from the row (building a `serde_json::Value` per row copied every state).

use refold::fold::State;
use refold::table::StateRow;
use serde::ser::{Serialize, SerializeMap, Serializer};

/// A field's value, borrowed from the row.
enum Cell<'r> {
    Str(&'r str),
    Int(i64),
    State(&'r State),
}

impl Serialize for Cell<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Cell::Str(v) => s.serialize_str(v),
            Cell::Int(v) => s.serialize_i64(*v),
            Cell::State(v) => v.serialize(s),
        }
    }
}

/// `{"events_folded", "last_event_id", "last_event_time_us", "last_offset", <key_field>,
/// "state", "tenant_id"}`, keys in byte order; a key field named like another field
/// replaces it.
pub struct Line<'r> {
    fields: Vec<(&'r str, Cell<'r>)>,
}

impl<'r> Line<'r> {
    pub fn new(row: &'r StateRow, key_field: &'r str) -> Self {
        let mut fields = vec![
            ("tenant_id", Cell::Str(&row.tenant_id)),
            ("state", Cell::State(&row.state)),
            ("events_folded", Cell::Int(row.events_folded)),
            ("last_offset", Cell::Int(row.last_offset)),
            ("last_event_id", Cell::Str(&row.last_event_id)),
            ("last_event_time_us", Cell::Int(row.last_event_time_us)),
        ];
        fields.retain(|(name, _)| *name != key_field);
        fields.push((key_field, Cell::Str(&row.key)));
        fields.sort_unstable_by_key(|(name, _)| *name);
        Self { fields }
    }
}

impl Serialize for Line<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.fields.len()))?;
        for (name, cell) in &self.fields {
            map.serialize_entry(name, cell)?;
        }
        map.end()
    }
}
