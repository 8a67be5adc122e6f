//! Per-batch metrics as one CloudWatch embedded metric format (EMF) line on stdout, written
//! with refold's shared EMF helper (`refold::emf`).

use refold::emf::EmfLine;
use serde::Serialize;
use serde_json::Value;

/// What one invocation did.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct BatchMetrics {
    pub pipeline: String,
    /// Records the event held.
    pub events: u64,
    /// State rows written.
    pub keys: u64,
    pub folded: u64,
    pub filtered: u64,
    pub dead_letters: u64,
    pub skipped: u64,
    pub already_applied: u64,
    pub deferred: u64,
    pub decode_ms: f64,
    pub fold_ms: f64,
    pub commit_ms: f64,
    /// Now minus the newest record's timestamp (how far behind the fold runs), when known.
    pub lag_ms: Option<i64>,
}

pub use refold::emf::NAMESPACE;

impl BatchMetrics {
    fn line(&self) -> EmfLine {
        let mut l = EmfLine::new([("pipeline", self.pipeline.as_str())]);
        l.count("events", self.events)
            .count("keys", self.keys)
            .count("folded", self.folded)
            .count("filtered", self.filtered)
            .count("dead_letters", self.dead_letters)
            .count("skipped", self.skipped)
            .count("already_applied", self.already_applied)
            .count("deferred", self.deferred)
            .millis("decode_ms", self.decode_ms)
            .millis("fold_ms", self.fold_ms)
            .millis("commit_ms", self.commit_ms);
        if let Some(lag) = self.lag_ms {
            l.millis("lag_ms", lag as f64);
        }
        l
    }

    /// The EMF document: metrics under namespace `refold`, dimension `pipeline`.
    pub fn emf(&self, now_ms: i64) -> Value {
        self.line().to_value(now_ms)
    }

    /// Prints the EMF line to stdout (one line, as CloudWatch expects).
    pub fn emit(&self) {
        self.line().emit();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn emf_document_declares_every_metric_it_carries() {
        let m = BatchMetrics {
            pipeline: "p".into(),
            events: 10,
            keys: 3,
            dead_letters: 1,
            lag_ms: Some(5),
            ..Default::default()
        };
        let v = m.emf(1_700_000_000_000);
        let defs = v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "refold");
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["pipeline"]])
        );
        for d in defs {
            let name = d["Name"].as_str().unwrap();
            assert!(v.get(name).is_some(), "metric {name} has a value");
        }
        assert_eq!(v["events"], 10);
        assert_eq!(v["lag_ms"], 5);
        assert_eq!(v["pipeline"], "p");
        let no_lag = BatchMetrics::default().emf(0);
        assert!(no_lag.get("lag_ms").is_none());
    }
}
