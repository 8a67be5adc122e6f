//! Per-batch metrics as one CloudWatch embedded metric format (EMF) line on stdout: Lambda
//! ships stdout to CloudWatch Logs, which extracts the metrics (no API call, no agent).

use serde::Serialize;
use serde_json::{Value, json};

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

pub const NAMESPACE: &str = "refold";

impl BatchMetrics {
    /// The EMF document: metrics under namespace `refold`, dimension `pipeline`.
    pub fn emf(&self, now_ms: i64) -> Value {
        let counts = [
            ("events", self.events),
            ("keys", self.keys),
            ("folded", self.folded),
            ("filtered", self.filtered),
            ("dead_letters", self.dead_letters),
            ("skipped", self.skipped),
            ("already_applied", self.already_applied),
            ("deferred", self.deferred),
        ];
        let times = [
            ("decode_ms", self.decode_ms),
            ("fold_ms", self.fold_ms),
            ("commit_ms", self.commit_ms),
        ];
        let mut defs: Vec<Value> = counts
            .iter()
            .map(|(n, _)| json!({"Name": n, "Unit": "Count"}))
            .collect();
        defs.extend(
            times
                .iter()
                .map(|(n, _)| json!({"Name": n, "Unit": "Milliseconds"})),
        );
        let mut doc = serde_json::Map::new();
        if self.lag_ms.is_some() {
            defs.push(json!({"Name": "lag_ms", "Unit": "Milliseconds"}));
        }
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": now_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["pipeline"]],
                    "Metrics": defs
                }]
            }),
        );
        doc.insert("pipeline".into(), json!(self.pipeline));
        for (n, v) in counts {
            doc.insert(n.into(), json!(v));
        }
        for (n, v) in times {
            doc.insert(n.into(), json!((v * 1000.0).round() / 1000.0));
        }
        if let Some(l) = self.lag_ms {
            doc.insert("lag_ms".into(), json!(l));
        }
        Value::Object(doc)
    }

    /// Prints the EMF line to stdout (one line, as CloudWatch expects).
    pub fn emit(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        println!("{}", self.emf(now));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
