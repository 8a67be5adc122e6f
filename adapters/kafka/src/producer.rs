//! Producing: single records, or the lines of a JSONL file, keyed by the caller.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::future_producer::{Delivery, OwnedDeliveryResult};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use refold::error::{Error, ErrorKind, Result};

use crate::connection::KafkaConnection;
use crate::context::KafkaContext;
use crate::kafka_err;

/// How long a record may wait for its delivery (librdkafka's `message.timeout.ms`).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `enqueue` keeps retrying while the producer's local queue is full.
const QUEUE_FULL_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two attempts to enqueue into a full local queue.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(20);

/// Where produced records went.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProduceReport {
    pub produced: usize,
    /// Per partition: (first offset, last offset) written.
    pub partitions: BTreeMap<i32, (i64, i64)>,
}

impl ProduceReport {
    fn record(&mut self, partition: i32, offset: i64) {
        self.produced += 1;
        let e = self.partitions.entry(partition).or_insert((offset, offset));
        e.0 = e.0.min(offset);
        e.1 = e.1.max(offset);
    }

    /// Adds the records of another report (e.g. of the next window of a file).
    pub fn absorb(&mut self, other: &ProduceReport) {
        self.produced += other.produced;
        for (p, (first, last)) in &other.partitions {
            let e = self.partitions.entry(*p).or_insert((*first, *last));
            e.0 = e.0.min(*first);
            e.1 = e.1.max(*last);
        }
    }
}

/// A Kafka producer (acks=all, Kafka's default partitioner: a key's records share a
/// partition and keep their order).
pub struct Producer {
    inner: FutureProducer<KafkaContext>,
}

pub(crate) fn producer_config(conn: &KafkaConnection) -> ClientConfig {
    let mut c = conn.client_config();
    c.set("acks", "all")
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            DELIVERY_TIMEOUT.as_millis().to_string(),
        )
        // The default partitioner of the Java client: the same key lands in the same
        // partition whichever client produced it.
        .set("partitioner", "murmur2_random");
    c
}

/// The partition Kafka's default partitioner puts a key in (the Java client's, and
/// librdkafka's `murmur2_random` that [`Producer`] uses): murmur2 of the key, made positive,
/// modulo the partition count. `partitions` must be at least 1.
pub fn default_partition(key: &[u8], partitions: i32) -> i32 {
    let positive = (murmur2(key) & 0x7fff_ffff) as i32;
    positive % partitions.max(1)
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`).
fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate().rev() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// The non-blank lines of a JSONL text, in order, without their line ends.
pub fn jsonl_lines(text: &[u8]) -> Vec<&[u8]> {
    text.split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .collect()
}

impl Producer {
    /// A producer to `brokers`, authenticated as the environment says.
    pub fn new(brokers: &str) -> Result<Self> {
        Self::connect(&KafkaConnection::from_env(brokers)?)
    }

    /// A producer on `conn`.
    pub fn connect(conn: &KafkaConnection) -> Result<Self> {
        let inner = producer_config(conn)
            .create_with_context(conn.context())
            .map_err(kafka_err(format!("kafka producer for {conn}")))?;
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
            .send(rec, DELIVERY_TIMEOUT)
            .await
            .map_err(|(e, _)| {
                Error::new(ErrorKind::Io, format!("produce to {topic}")).with_source(e)
            })?;
        Ok((d.partition, d.offset))
    }

    /// Produces every non-blank line of a JSONL text ([`jsonl_lines`]); see
    /// [`Producer::produce_lines`].
    pub async fn produce_jsonl(
        &self,
        topic: &str,
        text: &[u8],
        key_of: impl Fn(&[u8]) -> Option<String>,
    ) -> Result<ProduceReport> {
        self.produce_lines(topic, &jsonl_lines(text), key_of).await
    }

    /// Produces `lines` in order, each keyed by `key_of(line)` (`None`: unkeyed), and waits
    /// for every delivery.
    pub async fn produce_lines(
        &self,
        topic: &str,
        lines: &[&[u8]],
        key_of: impl Fn(&[u8]) -> Option<String>,
    ) -> Result<ProduceReport> {
        self.produce_lines_at(topic, lines, key_of, |_| None).await
    }

    /// As [`Producer::produce_lines`], each record's Kafka timestamp `time_of(line)`
    /// (milliseconds since the Unix epoch; `None`: the producer's clock).
    pub async fn produce_lines_at(
        &self,
        topic: &str,
        lines: &[&[u8]],
        key_of: impl Fn(&[u8]) -> Option<String>,
        time_of: impl Fn(&[u8]) -> Option<i64>,
    ) -> Result<ProduceReport> {
        let keys: Vec<Option<String>> = lines.iter().map(|l| key_of(l)).collect();
        let mut pending = Vec::with_capacity(lines.len());
        for (line, key) in lines.iter().zip(&keys) {
            let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).payload(*line);
            if let Some(k) = key {
                rec = rec.key(k.as_bytes());
            }
            if let Some(t) = time_of(line) {
                rec = rec.timestamp(t);
            }
            // Enqueued synchronously, in order (a key's records keep their order).
            pending.push(enqueue(&self.inner, rec, topic).await?);
        }
        let mut report = ProduceReport::default();
        for r in join_in_order(pending).await {
            let d = delivered(r, topic)?;
            report.record(d.partition, d.offset);
        }
        Ok(report)
    }
}

/// Enqueues a record now (waiting only while the local queue is full).
pub(crate) async fn enqueue<'a>(
    p: &FutureProducer<KafkaContext>,
    mut rec: FutureRecord<'a, [u8], [u8]>,
    topic: &str,
) -> Result<DeliveryFuture> {
    let deadline = Instant::now() + QUEUE_FULL_TIMEOUT;
    loop {
        match p.send_result(rec) {
            Ok(f) => return Ok(f),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                if Instant::now() < deadline =>
            {
                rec = r;
                p.poll(Duration::ZERO);
                tokio::time::sleep(QUEUE_FULL_PAUSE).await;
            }
            Err((e, _)) => {
                return Err(Error::new(ErrorKind::Io, format!("produce to {topic}")).with_source(e));
            }
        }
    }
}

/// The delivery of one record, or why it failed.
pub(crate) fn delivered<E>(
    r: std::result::Result<OwnedDeliveryResult, E>,
    topic: &str,
) -> Result<Delivery> {
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
pub(crate) async fn join_in_order<F: std::future::Future>(fs: Vec<F>) -> Vec<F::Output> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_is_kafkas() {
        // Values of Kafka's own UtilsTest.testMurmur2.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, want) in cases {
            assert_eq!(
                murmur2(key) as i32,
                want,
                "{}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn jsonl_lines_skip_blank_lines_and_line_ends() {
        let text = b"a\r\n\n  \nb\nc";
        assert_eq!(jsonl_lines(text), vec![&b"a"[..], b"b", b"c"]);
    }

    #[test]
    fn reports_absorb_counts_and_offset_ranges() {
        let mut a = ProduceReport::default();
        a.record(0, 3);
        a.record(0, 1);
        let mut b = ProduceReport::default();
        b.record(0, 9);
        b.record(2, 0);
        a.absorb(&b);
        assert_eq!(a.produced, 4);
        assert_eq!(a.partitions, BTreeMap::from([(0, (1, 9)), (2, (0, 0))]));
    }
}
