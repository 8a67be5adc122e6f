//! A record as read from the event log, independent of any Kafka client or trigger type.
//! Adapters (the Kafka ESM event, rdkafka, a JSONL file) turn their records into these.

/// One record of the source topic. `value` holds the raw bytes of the event envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Broker or producer time of the record, milliseconds since the Unix epoch.
    pub timestamp_ms: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

/// The records of a JSON Lines file: one per non-empty line, all in partition 0, the offset
/// being the line's index (0-based) so messages can point at `line offset+1`.
pub fn from_jsonl(text: &[u8], topic: &str) -> Vec<SourceRecord> {
    text.split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(i, line)| SourceRecord {
            topic: topic.to_owned(),
            partition: 0,
            offset: i as i64,
            timestamp_ms: None,
            key: None,
            value: line.strip_suffix(b"\r").unwrap_or(line).to_vec(),
        })
        .collect()
}
