//! refold's Kafka adapter: the only crate that knows rdkafka.
//!
//! - [`Producer`]: produce records, or a JSONL file of envelopes keyed by the pipeline's key.
//! - [`read_topic`] / [`consume_esm_batches`]: read a topic's partitions (from the low to the
//!   high watermark) into [`SourceRecord`]s, or into batches of the exact JSON shape of the
//!   Lambda Kafka event source mapping event (real base64), to feed the fold-batch handler.
//! - [`MockBroker`]: an in-process broker (`rdkafka::mocking::MockCluster`) for the embedded
//!   demo and tests.
//! - [`KafkaDeadLetters`]: dead letters to a DLQ topic.
//!
//! [`esm_event`] builds the ESM JSON by hand (serde_json), so this crate does not depend on
//! `aws_lambda_events` (only `functions/*` do).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, Timestamp};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};

use refold::dead_letter::{DeadLetter, DeadLetterStore};
use refold::error::{Error, ErrorKind, Result};
use refold::record::SourceRecord;

fn kafka_err(what: impl Into<String>) -> impl FnOnce(KafkaError) -> Error {
    let what = what.into();
    move |e| Error::new(ErrorKind::Io, what).with_source(e)
}

/// The key of an envelope, as the pipeline keys its state: `data.<key_field>` when present
/// (string or number), else `entity_id`. `None` when the line is not a JSON object.
pub fn envelope_key(line: &[u8], key_field: &str) -> Option<String> {
    let v: Value = serde_json::from_slice(line).ok()?;
    let as_text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    v.get("data")
        .and_then(|d| d.get(key_field))
        .and_then(as_text)
        .or_else(|| v.get("entity_id").and_then(as_text))
}

// ---------------------------------------------------------------------------------------
// Producer

/// Where produced records went.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProduceReport {
    pub produced: usize,
    /// Per partition: (first offset, last offset) written.
    pub partitions: BTreeMap<i32, (i64, i64)>,
}

pub struct Producer {
    inner: FutureProducer,
}

fn producer_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        // The default partitioner of the Java client: the same key lands in the same
        // partition whichever client produced it.
        .set("partitioner", "murmur2_random");
    c
}

impl Producer {
    pub fn new(brokers: &str) -> Result<Self> {
        let inner = producer_config(brokers)
            .create()
            .map_err(kafka_err(format!("kafka producer for {brokers}")))?;
        Ok(Self { inner })
    }

    /// Produces one record and waits for its delivery: (partition, offset).
    pub async fn produce(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
    ) -> Result<(i32, i64)> {
        let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).payload(value);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        let d = self
            .inner
            .send(rec, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| {
                Error::new(ErrorKind::Io, format!("produce to {topic}")).with_source(e)
            })?;
        Ok((d.partition, d.offset))
    }

    /// Produces every non-blank line of a JSONL file, in file order, keyed by `key_of(line)`
    /// (lines without a key, e.g. malformed ones, go unkeyed), and waits for every delivery.
    pub async fn produce_jsonl(
        &self,
        topic: &str,
        text: &[u8],
        key_of: impl Fn(&[u8]) -> Option<String>,
    ) -> Result<ProduceReport> {
        let lines: Vec<&[u8]> = text
            .split(|b| *b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
            .collect();
        let keys: Vec<Option<String>> = lines.iter().map(|l| key_of(l)).collect();
        let mut pending = Vec::with_capacity(lines.len());
        for (line, key) in lines.iter().zip(&keys) {
            let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).payload(*line);
            if let Some(k) = key {
                rec = rec.key(k.as_bytes());
            }
            // Enqueued synchronously, in file order (a key's records keep their order).
            pending.push(enqueue(&self.inner, rec, topic).await?);
        }
        let mut report = ProduceReport::default();
        for r in futures_join(pending).await {
            let d = delivered(r, topic)?;
            report.produced += 1;
            let e = report
                .partitions
                .entry(d.partition)
                .or_insert((d.offset, d.offset));
            e.0 = e.0.min(d.offset);
            e.1 = e.1.max(d.offset);
        }
        Ok(report)
    }
}

/// Enqueues a record now (waiting only while the local queue is full).
async fn enqueue<'a>(
    p: &FutureProducer,
    mut rec: FutureRecord<'a, [u8], [u8]>,
    topic: &str,
) -> Result<DeliveryFuture> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match p.send_result(rec) {
            Ok(f) => return Ok(f),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                if Instant::now() < deadline =>
            {
                rec = r;
                p.poll(Duration::from_millis(0));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err((e, _)) => {
                return Err(Error::new(ErrorKind::Io, format!("produce to {topic}")).with_source(e));
            }
        }
    }
}

fn delivered<E>(
    r: std::result::Result<rdkafka::producer::future_producer::OwnedDeliveryResult, E>,
    topic: &str,
) -> Result<rdkafka::producer::future_producer::Delivery> {
    match r {
        Ok(Ok(d)) => Ok(d),
        Ok(Err((e, _))) => {
            Err(Error::new(ErrorKind::Io, format!("produce to {topic}")).with_source(e))
        }
        Err(_) => Err(Error::new(
            ErrorKind::Io,
            format!("produce to {topic}: producer dropped"),
        )),
    }
}

/// Awaits futures concurrently, keeping their order (no extra dependency for join_all).
async fn futures_join<F: std::future::Future>(fs: Vec<F>) -> Vec<F::Output> {
    let mut handles: Vec<std::pin::Pin<Box<F>>> = fs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..handles.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (h, o) in handles.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match h.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// Creates a topic with `partitions` partitions (replication 1); an existing topic is fine.
pub async fn create_topic(brokers: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(kafka_err(format!("kafka admin for {brokers}")))?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics([&new], &opts)
        .await
        .map_err(kafka_err(format!("create topic {topic}")))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("create topic {t}: {code}"),
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Consumer

fn consumer(brokers: &str, group: &str) -> Result<BaseConsumer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .map_err(kafka_err(format!("kafka consumer for {brokers}")))
}

/// Reads every record of `topic` present now (each partition from its low to its high
/// watermark), in consumption order: per partition in offset order, partitions interleaved
/// as the broker delivered them. Blocking (call from `spawn_blocking` in async code).
pub fn read_topic(brokers: &str, topic: &str, timeout: Duration) -> Result<Vec<SourceRecord>> {
    let c = consumer(brokers, &format!("refold-reader-{}", std::process::id()))?;
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(kafka_err(format!("metadata of {topic}")))?;
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("topic {topic} has no partitions (does it exist?)"),
        ));
    }
    let mut tpl = TopicPartitionList::new();
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for p in &partitions {
        let (low, high) = c
            .fetch_watermarks(topic, *p, Duration::from_secs(10))
            .map_err(kafka_err(format!("watermarks of {topic}-{p}")))?;
        if high > low {
            tpl.add_partition_offset(topic, *p, Offset::Offset(low))
                .map_err(kafka_err("assign"))?;
            ends.insert(*p, high);
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return Ok(out);
    }
    c.assign(&tpl)
        .map_err(kafka_err(format!("assign {topic}")))?;
    let deadline = Instant::now() + timeout;
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    while ends
        .iter()
        .any(|(p, high)| next.get(p).copied().unwrap_or(i64::MIN) < *high)
    {
        if Instant::now() > deadline {
            return Err(Error::new(
                ErrorKind::Io,
                format!("reading {topic}: timed out after {timeout:?} at {next:?}, ends {ends:?}"),
            ));
        }
        let Some(m) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.map_err(kafka_err(format!("consume {topic}")))?;
        let ts = match m.timestamp() {
            Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => Some(t),
            Timestamp::NotAvailable => None,
        };
        next.insert(m.partition(), m.offset() + 1);
        out.push(SourceRecord {
            topic: m.topic().to_owned(),
            partition: m.partition(),
            offset: m.offset(),
            timestamp_ms: ts,
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Reads the topic as [`read_topic`] does and cuts what was read, in consumption order, into
/// ESM-shaped batches of at most `max_records` records (several partitions per batch, as the
/// event source mapping delivers them).
pub fn consume_esm_batches(
    brokers: &str,
    topic: &str,
    max_records: usize,
    source: EsmSource,
) -> Result<Vec<Value>> {
    let records = read_topic(brokers, topic, Duration::from_secs(60))?;
    Ok(records
        .chunks(max_records.max(1))
        .map(|c| esm_event(c, source, brokers))
        .collect())
}

// ---------------------------------------------------------------------------------------
// ESM JSON

/// Which Kafka event source mapping delivered the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EsmSource {
    /// Amazon MSK: `"eventSource": "aws:kafka"`, with `eventSourceArn`.
    Msk,
    /// Self-managed Apache Kafka: `"eventSource": "SelfManagedKafka"`.
    SelfManaged,
}

/// The Lambda Kafka ESM event for `records`: `records` keyed `"topic-partition"`, key and
/// value as standard base64 (null when absent), `timestamp` in ms, `headers: []`.
pub fn esm_event(records: &[SourceRecord], source: EsmSource, bootstrap_servers: &str) -> Value {
    let mut map: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in records {
        map.entry(format!("{}-{}", r.topic, r.partition))
            .or_default()
            .push(esm_record(r));
    }
    let mut ev = serde_json::Map::new();
    match source {
        EsmSource::Msk => {
            ev.insert("eventSource".into(), json!("aws:kafka"));
            ev.insert(
                "eventSourceArn".into(),
                json!("arn:aws:kafka:us-east-1:000000000000:cluster/refold-local/00000000-0000-0000-0000-000000000000-1"),
            );
        }
        EsmSource::SelfManaged => {
            ev.insert("eventSource".into(), json!("SelfManagedKafka"));
        }
    }
    ev.insert("bootstrapServers".into(), json!(bootstrap_servers));
    ev.insert("records".into(), json!(map));
    Value::Object(ev)
}

/// One record of an ESM event.
pub fn esm_record(r: &SourceRecord) -> Value {
    json!({
        "topic": r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "timestamp": r.timestamp_ms.unwrap_or(0),
        "timestampType": "CREATE_TIME",
        "key": r.key.as_ref().map(|k| STANDARD.encode(k)),
        "value": STANDARD.encode(&r.value),
        "headers": []
    })
}

// ---------------------------------------------------------------------------------------
// In-process broker

/// An in-process Kafka cluster (librdkafka's mock cluster): produce, consume, groups and
/// commits work; `offsets_for_times` does not. Lives as long as this value.
pub struct MockBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl MockBroker {
    /// Starts a one-broker cluster with `topic` of `partitions` partitions.
    pub fn start(topic: &str, partitions: i32) -> Result<Self> {
        let cluster =
            MockCluster::new(1).map_err(kafka_err("start the in-process Kafka mock cluster"))?;
        cluster
            .create_topic(topic, partitions, 1)
            .map_err(kafka_err(format!("create mock topic {topic}")))?;
        Ok(Self { cluster })
    }

    /// Adds a topic.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        self.cluster
            .create_topic(topic, partitions, 1)
            .map_err(kafka_err(format!("create mock topic {topic}")))
    }

    /// `bootstrap.servers` for producers and consumers.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}

// ---------------------------------------------------------------------------------------
// DLQ topic

/// Dead letters to a Kafka topic: one message per dead letter, the dead letter's JSON as the
/// value, the original key as the key. `put` returns when every message is acknowledged.
pub struct KafkaDeadLetters {
    producer: FutureProducer,
    topic: String,
}

impl KafkaDeadLetters {
    pub fn new(brokers: &str, topic: impl Into<String>) -> Result<Self> {
        let producer = producer_config(brokers)
            .create()
            .map_err(kafka_err(format!("kafka producer for {brokers}")))?;
        Ok(Self {
            producer,
            topic: topic.into(),
        })
    }
}

#[async_trait]
impl DeadLetterStore for KafkaDeadLetters {
    async fn put(&self, batch: &[DeadLetter]) -> Result<()> {
        let bodies: Vec<Vec<u8>> = batch
            .iter()
            .map(|d| {
                serde_json::to_vec(d).map_err(|e| {
                    Error::new(ErrorKind::Internal, "serialize a dead letter").with_source(e)
                })
            })
            .collect::<Result<_>>()?;
        let mut pending = Vec::with_capacity(batch.len());
        for (d, body) in batch.iter().zip(&bodies) {
            let mut rec: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&self.topic).payload(body.as_slice());
            if let Some(k) = &d.key {
                rec = rec.key(k.as_slice());
            }
            pending.push(enqueue(&self.producer, rec, &self.topic).await?);
        }
        for r in futures_join(pending).await {
            delivered(r, &self.topic)?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("kafka topic {}", self.topic)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn key_is_data_field_else_entity_id() {
        assert_eq!(
            envelope_key(br#"{"entity_id":"e","data":{"order_id":"o"}}"#, "order_id").as_deref(),
            Some("o")
        );
        assert_eq!(
            envelope_key(br#"{"entity_id":"e","data":{"order_id":7}}"#, "order_id").as_deref(),
            Some("7")
        );
        assert_eq!(
            envelope_key(br#"{"entity_id":"e","data":{}}"#, "order_id").as_deref(),
            Some("e")
        );
        assert_eq!(envelope_key(b"not json", "order_id"), None);
    }

    #[test]
    fn esm_event_shape() {
        let r = |p, o| SourceRecord {
            topic: "t".into(),
            partition: p,
            offset: o,
            timestamp_ms: Some(5),
            key: Some(b"k".to_vec()),
            value: b"{}".to_vec(),
        };
        let ev = esm_event(&[r(1, 3), r(0, 2), r(1, 4)], EsmSource::SelfManaged, "b:1");
        assert_eq!(ev["eventSource"], "SelfManagedKafka");
        assert_eq!(ev["records"]["t-1"].as_array().unwrap().len(), 2);
        assert_eq!(ev["records"]["t-0"][0]["value"], "e30=");
        assert_eq!(ev["records"]["t-0"][0]["key"], "aw==");
        assert_eq!(ev["records"]["t-0"][0]["headers"], json!([]));
        let ev = esm_event(&[r(0, 0)], EsmSource::Msk, "b:1");
        assert_eq!(ev["eventSource"], "aws:kafka");
        assert!(
            ev["eventSourceArn"]
                .as_str()
                .unwrap()
                .starts_with("arn:aws:kafka:")
        );
    }

    #[tokio::test]
    async fn mock_broker_round_trip() {
        let topic = "refold.mock.test";
        let b = MockBroker::start(topic, 3).unwrap();
        let brokers = b.bootstrap_servers();
        let p = Producer::new(&brokers).unwrap();
        let text =
            b"{\"entity_id\":\"a\"}\n{\"entity_id\":\"b\"}\nnot json\n\n{\"entity_id\":\"a\"}\n";
        let rep = p
            .produce_jsonl(topic, text, |l| envelope_key(l, "order_id"))
            .await
            .unwrap();
        assert_eq!(rep.produced, 4);
        let brokers2 = brokers.clone();
        let got = tokio::task::spawn_blocking(move || {
            read_topic(&brokers2, topic, Duration::from_secs(30))
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(got.len(), 4);
        // Same key, same partition, in order.
        let a: Vec<&SourceRecord> = got
            .iter()
            .filter(|r| r.key.as_deref() == Some(&b"a"[..]))
            .collect();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].partition, a[1].partition);
        assert!(a[0].offset < a[1].offset);
        drop(b);
    }
}
