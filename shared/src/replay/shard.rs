//! Shards: whole partitions per shard, never split (a key's events stay in one partition and
//! in order), balanced by range size: largest range first onto the least loaded shard (ties:
//! the shard with fewer partitions, then the lower index, so every shard gets a partition
//! when there are at least as many partitions as shards).

use serde::{Deserialize, Serialize};

/// Offsets `[from, to)` of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRange {
    pub partition: i32,
    pub from: i64,
    pub to: i64,
    /// Offsets `[from, archive_to)` come from the event archive (Kafka no longer held them
    /// at planning time), `[archive_to, to)` from Kafka. None: all from Kafka.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_to: Option<i64>,
}

impl PartitionRange {
    pub fn len(&self) -> i64 {
        (self.to - self.from).max(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The partitions one worker replays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    /// Sorted by partition.
    pub ranges: Vec<PartitionRange>,
}

impl Shard {
    /// Records in the shard's ranges.
    pub fn events(&self) -> i64 {
        self.ranges.iter().map(PartitionRange::len).sum()
    }
}

/// Splits `ranges` into `shards` shards (at least 1, at most the number of ranges).
pub fn shard(ranges: &[PartitionRange], shards: u32) -> Vec<Shard> {
    let n = (shards.max(1) as usize).min(ranges.len().max(1));
    let mut out: Vec<Shard> = (0..n as u32)
        .map(|index| Shard {
            index,
            ranges: Vec::new(),
        })
        .collect();
    let mut sorted: Vec<PartitionRange> = ranges.to_vec();
    sorted.sort_by_key(|r| (std::cmp::Reverse(r.len()), r.partition));
    for r in sorted {
        let Some(s) = out
            .iter_mut()
            .min_by_key(|s| (s.events(), s.ranges.len(), s.index))
        else {
            break;
        };
        s.ranges.push(r);
    }
    for s in &mut out {
        s.ranges.sort_by_key(|r| r.partition);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn r(partition: i32, len: i64) -> PartitionRange {
        PartitionRange {
            partition,
            from: 10,
            to: 10 + len,
            archive_to: None,
        }
    }

    #[test]
    fn whole_partitions_balanced_largest_first() {
        let ranges = [r(0, 100), r(1, 60), r(2, 50), r(3, 40), r(4, 10)];
        let s = shard(&ranges, 2);
        assert_eq!(s.len(), 2);
        // 100 -> s0; 60 -> s1; 50 -> s1 (110); 40 -> s0 (140); 10 -> s1 (120).
        let parts = |i: usize| s[i].ranges.iter().map(|r| r.partition).collect::<Vec<_>>();
        assert_eq!(parts(0), vec![0, 3]);
        assert_eq!(parts(1), vec![1, 2, 4]);
        assert_eq!((s[0].events(), s[1].events()), (140, 120));
        // Every partition exactly once.
        let mut all: Vec<i32> = s
            .iter()
            .flat_map(|s| s.ranges.iter().map(|r| r.partition))
            .collect();
        all.sort();
        assert_eq!(all, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn empty_ranges_still_spread_and_shards_are_capped() {
        let ranges = [r(0, 0), r(1, 0), r(2, 0), r(3, 0)];
        let s = shard(&ranges, 4);
        assert!(s.iter().all(|s| s.ranges.len() == 1));
        assert_eq!(shard(&ranges, 9).len(), 4);
        assert_eq!(shard(&ranges, 1)[0].ranges.len(), 4);
    }
}
