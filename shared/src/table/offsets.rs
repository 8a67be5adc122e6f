//! The consumer group's offset map: `refold.offsets.<topic>/<group>` = JSON
//! `{"<partition>": next_offset}` with every partition the group has committed, not only the
//! one a snapshot wrote.
//!
//! Kafka topic names cannot contain `/` (only `[a-zA-Z0-9._-]`), so splitting the key at its
//! first `/` after the prefix gives the topic and group back unambiguously; the older
//! `<topic>.<group>` form could not tell topic `a.b` + group `c` from `a` + `b.c`.
//!
//! Every refold commit that moves offsets writes the map twice, in one metadata update: in
//! its snapshot's summary (exact for that snapshot, as the Iceberg Kafka Connect sink keeps
//! it), and as a table property. Other engines' rewrites (OPTIMIZE, rewrite_data_files,
//! PyIceberg overwrite/delete) commit snapshots without refold's keys, and snapshot expiry
//! then drops refold's snapshots; table properties survive both.
//!
//! Read rule ([`read`]), first that answers:
//! 1. the current snapshot's summary (exact, also after a rollback to an older snapshot);
//! 2. the table property (the newest map refold committed);
//! 3. the summaries of main's ancestors, newest first (bounded);
//! 4. no snapshot at all: nothing committed (an empty map);
//! 5. otherwise a `Config` error: the table has history but nothing says where this group
//!    stands, and guessing would fold records twice or skip them.
//!
//! Known limit of rule 2: after a rollback to an older snapshot followed by a foreign commit,
//! the property is newer than the data it describes. Only an operator rolls back; refold's
//! next commit writes both again.

use std::collections::BTreeMap;

use iceberg::spec::TableMetadata;

use crate::error::{Error, ErrorKind, Result};

/// Prefix of the summary and table property that hold a group's offset map.
pub const OFFSETS_PROPERTY_PREFIX: &str = "refold.offsets.";

/// `refold.offsets.<topic>/<group>`.
pub fn key(topic: &str, group: &str) -> String {
    format!("{OFFSETS_PROPERTY_PREFIX}{topic}/{group}")
}

/// The (topic, group) of an offsets key; `None` for other keys (and the older ambiguous
/// `<topic>.<group>` form).
pub fn parse_key(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix(OFFSETS_PROPERTY_PREFIX)?.split_once('/')
}

/// refold's earlier key form (ambiguous; read only to point at it in an error).
fn legacy_key(topic: &str, group: &str) -> String {
    format!("{OFFSETS_PROPERTY_PREFIX}{topic}.{group}")
}

/// The offset map as JSON text, `{"<partition>": <next offset>}` (serde writes integer map
/// keys as strings).
pub fn encode(m: &BTreeMap<i32, i64>) -> String {
    serde_json::to_string(m).unwrap_or_else(|e| unreachable!("an i32 -> i64 map serializes: {e}"))
}

/// The offset map of [`encode`]'s text.
pub fn decode(s: &str) -> Result<BTreeMap<i32, i64>> {
    serde_json::from_str(s).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("offset map is malformed (want {{\"<partition>\": <next offset>}}): {s:.200}"),
        )
        .with_source(e)
    })
}

/// Where a group's offset map was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    CurrentSnapshot,
    TableProperty,
    /// An ancestor snapshot of main (its id).
    Ancestor(i64),
    /// The table has no snapshot: nothing committed yet.
    NoSnapshot,
}

/// The group's committed offsets in `md` and where they were found, by the read rule of the
/// module docs (at most `max_history` ancestors walked).
pub fn read_with_source(
    md: &TableMetadata,
    topic: &str,
    group: &str,
    max_history: usize,
) -> Result<(BTreeMap<i32, i64>, Source)> {
    let key = key(topic, group);
    let decode_at =
        |v: &str, at: &str| decode(v).map_err(|e| e.with_context(format!("{key} in {at}")));
    let Some(current) = md.current_snapshot() else {
        return match md.properties().get(&key) {
            Some(v) => Ok((decode_at(v, "table properties")?, Source::TableProperty)),
            None => Ok((BTreeMap::new(), Source::NoSnapshot)),
        };
    };
    if let Some(v) = current.summary().additional_properties.get(&key) {
        return Ok((
            decode_at(v, "the current snapshot")?,
            Source::CurrentSnapshot,
        ));
    }
    if let Some(v) = md.properties().get(&key) {
        return Ok((decode_at(v, "table properties")?, Source::TableProperty));
    }
    let mut cur = current
        .parent_snapshot_id()
        .and_then(|id| md.snapshot_by_id(id).cloned());
    let mut walked = 0;
    while let Some(s) = cur {
        if walked >= max_history {
            break;
        }
        if let Some(v) = s.summary().additional_properties.get(&key) {
            let at = format!("snapshot {}", s.snapshot_id());
            return Ok((decode_at(v, &at)?, Source::Ancestor(s.snapshot_id())));
        }
        walked += 1;
        cur = s
            .parent_snapshot_id()
            .and_then(|id| md.snapshot_by_id(id).cloned());
    }
    Err(unknown(md, topic, group, walked))
}

/// The group's committed offsets (see [`read_with_source`]).
pub fn read(
    md: &TableMetadata,
    topic: &str,
    group: &str,
    max_history: usize,
) -> Result<BTreeMap<i32, i64>> {
    read_with_source(md, topic, group, max_history).map(|(m, _)| m)
}

fn unknown(md: &TableMetadata, topic: &str, group: &str, walked: usize) -> Error {
    let key = key(topic, group);
    let legacy = legacy_key(topic, group);
    let has_legacy = md.properties().contains_key(&legacy)
        || md
            .snapshots()
            .any(|s| s.summary().additional_properties.contains_key(&legacy));
    let hint = if has_legacy {
        format!(
            " (a snapshot carries the older, ambiguous key `{legacy}`: if it is this group's, \
             copy its value into the property)"
        )
    } else {
        String::new()
    };
    Error::new(
        ErrorKind::Config,
        format!(
            "table at {} has snapshots but no committed offsets of topic `{topic}`, consumer group \
             `{group}`: neither the current snapshot, nor table property `{key}`, nor the {walked} \
             ancestor snapshot(s) left carry them (another engine rewrote the table and expired \
             refold's snapshots, or this group never wrote it); refold will not guess where to \
             resume. Replay into a new table, or set table property `{key}` to the next offset \
             of every partition, e.g. '{{\"0\": 1234}}'{hint}",
            md.location()
        ),
    )
}

/// Committed offsets never go backwards and no partition disappears.
pub fn assert_forward(before: &BTreeMap<i32, i64>, after: &BTreeMap<i32, i64>) -> Result<()> {
    for (p, o) in before {
        match after.get(p) {
            Some(n) if n >= o => {}
            other => {
                return Err(Error::new(
                    ErrorKind::Internal,
                    format!("committed offset of partition {p} would go from {o} to {other:?}"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_forward() {
        let m = BTreeMap::from([(0, 5), (10, 7), (2, 0)]);
        let s = encode(&m);
        assert_eq!(s, r#"{"0":5,"2":0,"10":7}"#);
        assert_eq!(decode(&s).unwrap(), m);
        assert!(decode(r#"{"0":1.5}"#).is_err());
        assert!(decode(r#"{"0":"5"}"#).is_err());
        assert!(assert_forward(&m, &BTreeMap::from([(0, 5), (10, 8), (2, 0), (3, 1)])).is_ok());
        assert!(assert_forward(&m, &BTreeMap::from([(0, 4), (10, 7), (2, 0)])).is_err());
        assert!(assert_forward(&m, &BTreeMap::from([(0, 5), (10, 7)])).is_err());
        assert!(decode("{\"x\":1}").is_err());
    }

    #[test]
    fn keys_are_unambiguous() {
        let (a, b) = (key("a.b", "c"), key("a", "b.c"));
        assert_ne!(a, b);
        assert_eq!(parse_key(&a), Some(("a.b", "c")));
        assert_eq!(parse_key(&b), Some(("a", "b.c")));
        // A group may contain `/`; a topic cannot, so the first `/` splits.
        assert_eq!(parse_key(&key("t", "g/x")), Some(("t", "g/x")));
        assert_eq!(parse_key("refold.offsets.a.b.c"), None);
        assert_eq!(legacy_key("a.b", "c"), legacy_key("a", "b.c"));
    }
}
