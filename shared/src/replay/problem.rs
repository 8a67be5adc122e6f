//! How a replay error maps to an HTTP answer, so the API only translates:
//! 400 `{"error": ..., "field": ...}` for a bad request (a [`RequestError`] names the field),
//! 404 for an unknown pipeline or replay ([`ReplayNotFound`]), 409 for a replay already
//! running into the same target ([`ReplayConflict`]), 500 for everything else.
//!
//! The markers travel as the `source` of a [`crate::Error`], found again by [`Problem::of`]
//! walking the source chain (the way `refold_kafka::beyond_retention` finds its cause).

use std::fmt;

use serde::Serialize;

use crate::error::{Error, ErrorKind};

/// A request field that is missing, malformed or out of range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// The request's field, e.g. `from_offset` (a top-level name of the body).
    pub field: String,
    pub message: String,
}

impl RequestError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// As a refold error (kind `InvalidInput`), the field kept for [`Problem::of`].
    pub fn into_error(self) -> Error {
        Error::new(ErrorKind::InvalidInput, format!("field `{}`", self.field)).with_source(self)
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RequestError {}

/// An unknown pipeline or replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayNotFound {
    pub what: String,
}

impl fmt::Display for ReplayNotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} not found", self.what)
    }
}

impl std::error::Error for ReplayNotFound {}

impl ReplayNotFound {
    pub fn error(what: impl Into<String>) -> Error {
        let nf = ReplayNotFound { what: what.into() };
        Error::new(ErrorKind::InvalidInput, "not found").with_source(nf)
    }
}

/// A replay (or a table) already holds the target this one asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayConflict {
    pub target_table: String,
    /// The replay holding it (empty: the table exists outside any running replay).
    pub holder: String,
    pub reason: String,
}

impl fmt::Display for ReplayConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "target table {}: {}", self.target_table, self.reason)
    }
}

impl std::error::Error for ReplayConflict {}

impl ReplayConflict {
    pub fn error(self) -> Error {
        Error::new(ErrorKind::InvalidInput, "conflict").with_source(self)
    }
}

/// What an API answers for an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    #[serde(skip)]
    pub status: u16,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

fn find<T: std::error::Error + 'static>(e: &Error) -> Option<&T> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e as _);
    while let Some(c) = cur {
        if let Some(t) = c.downcast_ref::<T>() {
            return Some(t);
        }
        cur = c.source();
    }
    None
}

impl Problem {
    /// The answer for `e`: 400 with the field, 404, 409, or 500.
    pub fn of(e: &Error) -> Self {
        if let Some(r) = find::<RequestError>(e) {
            return Self {
                status: 400,
                error: r.message.clone(),
                field: Some(r.field.clone()),
            };
        }
        let (status, field) = if find::<ReplayNotFound>(e).is_some() {
            (404, None)
        } else if find::<ReplayConflict>(e).is_some() {
            (409, None)
        } else {
            (500, None)
        };
        Self {
            status,
            error: e.to_string(),
            field,
        }
    }

    /// The field a bad request named, if `e` is one.
    pub fn field_of(e: &Error) -> Option<&str> {
        find::<RequestError>(e).map(|r| r.field.as_str())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let bad = RequestError::new("from_offset", "nope").into_error();
        let p = Problem::of(&bad.with_context("replay"));
        assert_eq!((p.status, p.field.as_deref()), (400, Some("from_offset")));
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"error":"nope","field":"from_offset"}"#
        );
        assert_eq!(Problem::of(&ReplayNotFound::error("replay x")).status, 404);
        let c = ReplayConflict {
            target_table: "a.b".into(),
            holder: "r".into(),
            reason: "running".into(),
        };
        assert_eq!(Problem::of(&c.error()).status, 409);
        assert_eq!(Problem::of(&Error::new(ErrorKind::Io, "x")).status, 500);
    }
}
