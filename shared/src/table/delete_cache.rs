//! A warm container's parsed position-delete files, so that a merge reads each delete file
//! once instead of once per merge.
//!
//! Why: between two compactions every merge adds a delete file to its partition, and each
//! lookup needs the deleted positions of the data files it reads: without the cache the
//! merges of a day re-read the same growing set of files (at 1 M keys, 10 files of 9,000
//! positions cost a merge about 15 ms; 100 would cost 150). Delete files never change once
//! written (Iceberg), so a parsed file stays true for as long as it lives; a compaction
//! removes it from the live set, after which it is no longer asked for and ages out.
//!
//! Limit: [`super::TableLimits::max_cached_delete_positions`] positions (8 bytes each plus the
//! data file paths) across all files; when a file would pass it, the cache starts over (the
//! same policy as the manifest cache: simple, and a merge's own files come right back).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The positions one delete file names, by data file path (each list sorted).
pub type DeletedPositions = HashMap<String, Vec<i64>>;

#[derive(Debug)]
pub struct DeleteCache {
    inner: Mutex<Inner>,
    max_positions: usize,
}

#[derive(Debug, Default)]
struct Inner {
    files: HashMap<String, Arc<DeletedPositions>>,
    positions: usize,
}

fn count(d: &DeletedPositions) -> usize {
    d.values().map(Vec::len).sum()
}

impl DeleteCache {
    /// A cache of at most `max_positions` positions (0: nothing is kept).
    pub fn new(max_positions: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_positions,
        }
    }

    pub fn get(&self, path: &str) -> Option<Arc<DeletedPositions>> {
        self.inner.lock().ok()?.files.get(path).cloned()
    }

    pub fn insert(&self, path: &str, deleted: Arc<DeletedPositions>) {
        let n = count(&deleted);
        if self.max_positions == 0 || n > self.max_positions {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner.files.contains_key(path) {
            return;
        }
        if inner.positions + n > self.max_positions {
            inner.files.clear();
            inner.positions = 0;
        }
        inner.positions += n;
        inner.files.insert(path.to_string(), deleted);
        debug_assert!(inner.positions <= self.max_positions);
    }

    /// (files, positions) held now.
    pub fn usage(&self) -> (usize, usize) {
        self.inner
            .lock()
            .map(|i| (i.files.len(), i.positions))
            .unwrap_or((0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(n: usize) -> Arc<DeletedPositions> {
        Arc::new(HashMap::from([(
            "d.parquet".to_string(),
            (0..n as i64).collect(),
        )]))
    }

    #[test]
    fn holds_files_within_the_budget_and_starts_over_past_it() {
        let c = DeleteCache::new(10);
        c.insert("a", file(4));
        c.insert("b", file(4));
        assert_eq!(c.usage(), (2, 8));
        assert_eq!(c.get("a").map(|d| count(&d)), Some(4));
        c.insert("c", file(4));
        assert_eq!(c.usage(), (1, 4));
        assert!(c.get("a").is_none() && c.get("c").is_some());
        c.insert("huge", file(11));
        assert!(c.get("huge").is_none());
        assert_eq!(c.usage(), (1, 4));
    }

    #[test]
    fn a_zero_budget_keeps_nothing() {
        let c = DeleteCache::new(0);
        c.insert("a", file(1));
        assert_eq!(c.usage(), (0, 0));
    }
}
