//! The source topic's partition count, the other half of the keying rule (`batch::KeyCheck`).
//! Kafka keeps a key in one partition only while the partition count stays the same; a topic
//! that grows sends keys to other partitions, where refold (which looks a key up in its own
//! partition) would start a second live row. So the count the pipeline declares
//! (`sources.<name>.partitions`) is recorded in the state table when the table is created
//! (`refold.source-partitions`), and the engine refuses — before writing anything — a batch
//! with a record from a partition at or past it, and a pipeline whose count differs from
//! the recorded one. Both say the same thing: rebuild the view (a replay into a new table,
//! then promote it).

use std::collections::BTreeMap;

use crate::error::{Error, ErrorKind, Result};

/// Table property: the source topic's partition count when the table was created.
pub const SOURCE_PARTITIONS_PROPERTY: &str = "refold.source-partitions";

const REBUILD: &str = "keys may have moved between partitions; rebuild the view with a \
                       replay into a new table (`refold replay`, then `refold promote`)";

/// The count to hold batches to: the table's recorded one, which the pipeline's (if it
/// declares one) must equal; the pipeline's when the table recorded none.
pub fn effective(
    table: &str,
    declared: Option<u32>,
    properties: &BTreeMap<String, String>,
) -> Result<Option<u32>> {
    let Some(text) = properties.get(SOURCE_PARTITIONS_PROPERTY) else {
        return Ok(declared);
    };
    let recorded: u32 = text.parse().map_err(|_| {
        Error::new(
            ErrorKind::Config,
            format!(
                "table {table}: property {SOURCE_PARTITIONS_PROPERTY}=`{text:.40}` is not a count"
            ),
        )
    })?;
    match declared {
        Some(d) if d != recorded => Err(Error::new(
            ErrorKind::Config,
            format!(
                "table {table} was built from a topic of {recorded} partitions \
                 ({SOURCE_PARTITIONS_PROPERTY}); the pipeline now declares {d} \
                 (sources.<name>.partitions): {REBUILD}"
            ),
        )),
        _ => Ok(Some(recorded)),
    }
}

/// Refuses partitions at or past `count` (the topic grew since the table was built).
pub fn check(
    topic: &str,
    count: Option<u32>,
    partitions: impl IntoIterator<Item = i32>,
) -> Result<()> {
    let Some(count) = count else { return Ok(()) };
    match partitions
        .into_iter()
        .find(|&p| u32::try_from(p).map_or(true, |p| p >= count))
    {
        Some(p) => Err(Error::new(
            ErrorKind::InvalidInput,
            format!(
                "a record from partition {p} of topic {topic}, which had {count} partitions \
                 when the table was built (sources.<name>.partitions): the topic was \
                 repartitioned; {REBUILD}. Nothing of this batch was written"
            ),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn props(n: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(SOURCE_PARTITIONS_PROPERTY.to_owned(), n.to_owned())])
    }

    #[test]
    fn the_recorded_count_holds_and_a_different_declared_one_is_refused() {
        assert_eq!(effective("t", Some(3), &BTreeMap::new()).unwrap(), Some(3));
        assert_eq!(effective("t", None, &props("3")).unwrap(), Some(3));
        assert_eq!(effective("t", Some(3), &props("3")).unwrap(), Some(3));
        let e = effective("ns.t", Some(6), &props("3"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("3 partitions") && e.contains("declares 6"),
            "{e}"
        );
        assert!(effective("t", None, &props("x")).is_err());
    }

    #[test]
    fn a_partition_past_the_count_is_refused_naming_it() {
        check("orders", Some(3), [0, 2, 1]).unwrap();
        check("orders", None, [7]).unwrap();
        let e = check("orders", Some(3), [0, 3]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(
            e.to_string()
                .contains("partition 3 of topic orders, which had 3"),
            "{e}"
        );
        assert!(check("orders", Some(3), [-1]).is_err());
    }
}
