//! The replay id: `<UTC time>-<8 hex digits>`, e.g. `20261202t051500z-3f9a1c2e`: sorts by
//! creation time (to the second; the random part breaks ties), lowercase, and only
//! `[0-9a-z-]`, so it is safe in object paths and (with `-` as `_`) in table names.
//! [`ReplayId::parse`] refuses anything else: an id from a URL never walks out of its folder.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::problem::ReplayNotFound;
use crate::error::Result;

const TIME_FORMAT: &str = "%Y%m%dt%H%M%Sz";
/// `20261202t051500z` + `-` + 8 hex digits.
const ID_LEN: usize = 16 + 1 + 8;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReplayId(String);

impl ReplayId {
    /// A new id for `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        let (a, _) = uuid::Uuid::new_v4().as_u64_pair();
        Self(format!("{}-{:08x}", now.format(TIME_FORMAT), a as u32))
    }

    /// An id as given (in a URL, a CLI argument); `NotFound` unless well formed.
    pub fn parse(s: &str) -> Result<Self> {
        Self::check(s).ok_or_else(|| ReplayNotFound::error(format!("replay `{s:.64}`")))
    }

    fn check(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let ok = b.len() == ID_LEN
            && b[..8].iter().all(u8::is_ascii_digit)
            && b[8] == b't'
            && b[9..15].iter().all(u8::is_ascii_digit)
            && b[15] == b'z'
            && b[16] == b'-'
            && b[17..]
                .iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
        ok.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as it goes into a table name (`-` becomes `_`).
    pub fn table_suffix(&self) -> String {
        self.0.replace('-', "_")
    }
}

impl fmt::Display for ReplayId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ReplayId {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        Self::check(&s).ok_or_else(|| format!("`{s:.64}` is not a replay id"))
    }
}

impl From<ReplayId> for String {
    fn from(id: ReplayId) -> String {
        id.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_sort_and_refuse_paths() {
        let t = DateTime::parse_from_rfc3339("2026-12-02T05:15:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let a = ReplayId::new(t);
        assert!(a.as_str().starts_with("20261202t051500z-"), "{a}");
        assert_eq!(ReplayId::parse(a.as_str()).unwrap(), a);
        let later = ReplayId::new(t + chrono::Duration::seconds(1));
        assert!(later > a);
        for bad in [
            "",
            "../../etc",
            "20261202t051500z-3F9A1C2E",
            "20261202t051500z_3f9a1c2e",
        ] {
            assert!(ReplayId::parse(bad).is_err(), "{bad}");
        }
        assert!(!a.table_suffix().contains('-'));
    }
}
