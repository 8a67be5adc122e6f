//! CloudWatch embedded metric format (EMF): metrics as one JSON line on stdout. Lambda ships
//! stdout to CloudWatch Logs, which extracts the metrics (no API call, no agent, no SDK).
//! Every handler writes its metrics through [`EmfLine`]: namespace `refold`, one dimension
//! set, each metric declared once with its unit and carried as a top-level member.

use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every refold metric.
pub const NAMESPACE: &str = "refold";

/// A CloudWatch metric unit (the subset refold uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Bytes,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Bytes => "Bytes",
        }
    }
}

/// One EMF document under construction.
#[derive(Debug, Clone, Default)]
pub struct EmfLine {
    dimensions: Vec<(String, String)>,
    metrics: Vec<(String, Unit, f64)>,
    properties: Map<String, Value>,
}

impl EmfLine {
    /// A document with one dimension set: `dimensions` (name, value), e.g. `[("pipeline", p)]`.
    pub fn new<'a>(dimensions: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            dimensions: dimensions
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Self::default()
        }
    }

    /// Adds a metric (a later one of the same name replaces it).
    pub fn metric(&mut self, name: &str, unit: Unit, value: f64) -> &mut Self {
        self.metrics.retain(|(n, _, _)| n != name);
        self.metrics.push((name.to_string(), unit, value));
        self
    }

    pub fn count(&mut self, name: &str, value: u64) -> &mut Self {
        self.metric(name, Unit::Count, value as f64)
    }

    pub fn millis(&mut self, name: &str, value: f64) -> &mut Self {
        self.metric(name, Unit::Milliseconds, value)
    }

    pub fn bytes(&mut self, name: &str, value: u64) -> &mut Self {
        self.metric(name, Unit::Bytes, value as f64)
    }

    /// A member that is searchable in the log but not a metric.
    pub fn property(&mut self, name: &str, value: Value) -> &mut Self {
        self.properties.insert(name.to_string(), value);
        self
    }

    /// The document, stamped `now_ms` (milliseconds since the Unix epoch).
    pub fn to_value(&self, now_ms: i64) -> Value {
        let defs: Vec<Value> = self
            .metrics
            .iter()
            .map(|(n, u, _)| json!({"Name": n, "Unit": u.name()}))
            .collect();
        let dims: Vec<&str> = self.dimensions.iter().map(|(k, _)| k.as_str()).collect();
        let mut doc = Map::new();
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": now_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [dims],
                    "Metrics": defs
                }]
            }),
        );
        for (k, v) in &self.properties {
            doc.insert(k.clone(), v.clone());
        }
        for (k, v) in &self.dimensions {
            doc.insert(k.clone(), json!(v));
        }
        for (n, _, v) in &self.metrics {
            // Whole numbers stay integers in the log line; others keep 3 decimals.
            let v = if v.fract() == 0.0 && v.abs() < 9e15 {
                json!(*v as i64)
            } else {
                json!((v * 1000.0).round() / 1000.0)
            };
            doc.insert(n.clone(), v);
        }
        Value::Object(doc)
    }

    /// Prints the document as one line on stdout, stamped now.
    pub fn emit(&self) {
        println!("{}", self.to_value(now_ms()));
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_metric_has_a_value_and_dimensions_are_members() {
        let mut l = EmfLine::new([("pipeline", "p"), ("table", "a.b")]);
        l.count("runs", 2)
            .millis("pass_ms", 12.34567)
            .bytes("freed", 10)
            .count("runs", 3)
            .property("report", json!({"x": 1}));
        let v = l.to_value(1_700_000_000_000);
        let cw = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "refold");
        assert_eq!(cw["Dimensions"], json!([["pipeline", "table"]]));
        let defs = cw["Metrics"].as_array().unwrap();
        assert_eq!(defs.len(), 3, "a repeated name is declared once");
        for d in defs {
            assert!(v.get(d["Name"].as_str().unwrap()).is_some(), "{d}");
        }
        assert_eq!(v["runs"], 3);
        assert_eq!(v["pass_ms"], 12.346);
        assert_eq!(v["freed"], 10);
        assert_eq!(v["pipeline"], "p");
        assert_eq!(v["report"]["x"], 1);
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000i64);
    }
}
