//! The consumer group's offset map in snapshot summaries (as the Iceberg Kafka Connect sink
//! keeps it): property `refold.offsets.<topic>.<group>` = JSON `{"<partition>": next_offset}`
//! with every partition the group has committed, not only the one a snapshot wrote.

use std::collections::BTreeMap;

use iceberg::spec::TableMetadata;

use crate::error::{Error, ErrorKind, Result};

/// Prefix of the summary property that holds a group's offset map.
pub const OFFSETS_PROPERTY_PREFIX: &str = "refold.offsets.";

pub fn summary_key(topic: &str, group: &str) -> String {
    format!("{OFFSETS_PROPERTY_PREFIX}{topic}.{group}")
}

pub fn encode(m: &BTreeMap<i32, i64>) -> String {
    let o: serde_json::Map<String, serde_json::Value> = m
        .iter()
        .map(|(p, o)| (p.to_string(), serde_json::Value::from(*o)))
        .collect();
    serde_json::Value::Object(o).to_string()
}

pub fn decode(s: &str) -> Result<BTreeMap<i32, i64>> {
    let bad = || {
        Error::new(
            ErrorKind::Io,
            format!("offset map in snapshot summary is malformed: {s:.200}"),
        )
    };
    let v: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(s).map_err(|e| bad().with_source(e))?;
    v.into_iter()
        .map(|(p, o)| {
            Ok((
                p.parse::<i32>().map_err(|_| bad())?,
                o.as_i64().ok_or_else(bad)?,
            ))
        })
        .collect()
}

/// The offset map of the newest snapshot on main's ancestry that carries `key` (at most
/// `max_history` snapshots walked back); empty if none does.
pub fn read(md: &TableMetadata, key: &str, max_history: usize) -> Result<BTreeMap<i32, i64>> {
    let mut cur = md.current_snapshot().cloned();
    let mut walked = 0;
    while let Some(s) = cur {
        if let Some(v) = s.summary().additional_properties.get(key) {
            return decode(v);
        }
        walked += 1;
        if walked >= max_history {
            break;
        }
        cur = s
            .parent_snapshot_id()
            .and_then(|id| md.snapshot_by_id(id).cloned());
    }
    Ok(BTreeMap::new())
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
        assert_eq!(decode(&s).unwrap(), m);
        assert!(assert_forward(&m, &BTreeMap::from([(0, 5), (10, 8), (2, 0), (3, 1)])).is_ok());
        assert!(assert_forward(&m, &BTreeMap::from([(0, 4), (10, 7), (2, 0)])).is_err());
        assert!(assert_forward(&m, &BTreeMap::from([(0, 5), (10, 7)])).is_err());
        assert!(decode("{\"x\":1}").is_err());
    }
}
