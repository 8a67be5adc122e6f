//! The in-process broker: librdkafka's mock cluster, and the limits of its log.
//!
//! The mock keeps at most [`MOCK_PARTITION_LOG_BYTES`] of record batches (and at most
//! [`MOCK_PARTITION_LOG_BATCHES`] batches) per partition: each append beyond that deletes the
//! oldest batches, moving the partition's log start, read or not (`rd_kafka_mock_partition_
//! log_append` in librdkafka's `rdkafka_mock.c`; both limits are fixed there, with no
//! configuration property or API to change them, and the mock has no DeleteRecords). So a
//! stream longer than a few MiB per partition cannot be produced whole and then read: produce
//! it in [`mock_windows`], reading each window back before producing the next. A reader that
//! falls behind anyway fails with [`crate::BeyondRetention`].

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use refold::error::Result;

use crate::kafka_err;

/// Bytes of record batches the mock keeps per partition (`max_size` in `rdkafka_mock.c`).
pub const MOCK_PARTITION_LOG_BYTES: usize = 5 * 1024 * 1024;
/// Record batches the mock keeps per partition (`max_cnt` in `rdkafka_mock.c`).
pub const MOCK_PARTITION_LOG_BATCHES: usize = 100_000;
/// Bytes a window of [`mock_windows`] holds at most: line bytes plus
/// [`RECORD_ALLOWANCE_BYTES`] per line. Well under [`MOCK_PARTITION_LOG_BYTES`]: the key of
/// a record (at most its line's length again) and the batch framing fit beside it.
pub const MOCK_WINDOW_BYTES: usize = 1024 * 1024;
/// Lines a window holds at most (far fewer record batches than
/// [`MOCK_PARTITION_LOG_BATCHES`], even one batch per record).
pub const MOCK_WINDOW_RECORDS: usize = 20_000;
/// Per-record bytes counted beside the line: record framing (varints, attributes, header
/// count) and a short key.
pub const RECORD_ALLOWANCE_BYTES: usize = 64;

/// Cuts `lines` into consecutive windows, each small enough that the mock keeps all of it
/// in any one partition however the keys spread: at most [`MOCK_WINDOW_RECORDS`] lines and
/// [`MOCK_WINDOW_BYTES`] (a line bigger than that gets a window of its own: the mock always
/// keeps a partition's newest batch).
pub fn mock_windows<'s, 'l>(lines: &'s [&'l [u8]]) -> Vec<&'s [&'l [u8]]> {
    let mut windows = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, line) in lines.iter().enumerate() {
        let cost = line.len() + RECORD_ALLOWANCE_BYTES;
        let full = i - start >= MOCK_WINDOW_RECORDS || bytes + cost > MOCK_WINDOW_BYTES;
        if i > start && full {
            windows.push(&lines[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += cost;
    }
    if start < lines.len() {
        windows.push(&lines[start..]);
    }
    windows
}

/// An in-process Kafka cluster (librdkafka's mock cluster): produce, consume, groups and
/// commits work; `offsets_for_times` and DeleteRecords do not, and each partition keeps only
/// its newest [`MOCK_PARTITION_LOG_BYTES`] (see the module documentation). Lives as long as
/// this value.
pub struct MockBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl MockBroker {
    /// Starts a one-broker cluster with `topic` of `partitions` partitions.
    pub fn start(topic: &str, partitions: i32) -> Result<Self> {
        let cluster =
            MockCluster::new(1).map_err(kafka_err("start the in-process Kafka mock cluster"))?;
        let broker = Self { cluster };
        broker.create_topic(topic, partitions)?;
        Ok(broker)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        BeyondRetention, EsmSource, Producer, TopicReader, beyond_retention, consume_esm_batches,
        read_topic,
    };
    use refold::record::SourceRecord;

    const READ_TIMEOUT: Duration = Duration::from_secs(60);

    /// Keys a test line `key:rest` by `key`.
    fn key_before_colon(line: &[u8]) -> Option<String> {
        let k = line.split(|b| *b == b':').next()?;
        Some(String::from_utf8_lossy(k).into_owned())
    }

    /// `n` lines of `bytes` bytes each, `k<i % keys>:<i>` padded with dots.
    fn lines(from: usize, n: usize, bytes: usize, keys: usize) -> Vec<Vec<u8>> {
        (from..from + n)
            .map(|i| {
                let mut l = format!("k{}:{i}:", i % keys).into_bytes();
                l.resize(bytes, b'.');
                l
            })
            .collect()
    }

    async fn produce(brokers: &str, topic: &str, lines: &[Vec<u8>]) -> usize {
        let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        let p = Producer::new(brokers).unwrap();
        p.produce_lines(topic, &refs, key_before_colon)
            .await
            .unwrap()
            .produced
    }

    async fn read_blocking(
        mut r: TopicReader,
    ) -> (TopicReader, refold::error::Result<Vec<SourceRecord>>) {
        tokio::task::spawn_blocking(move || {
            let got = r.read_available();
            (r, got)
        })
        .await
        .unwrap()
    }

    #[test]
    fn windows_stay_under_the_mock_limits_and_keep_every_line() {
        let small = vec![b"x".repeat(300); 10_000];
        let big = vec![b"y".repeat(MOCK_WINDOW_BYTES * 2)];
        let many = vec![b"z".to_vec(); MOCK_WINDOW_RECORDS * 2 + 1];
        for input in [&small, &big, &many] {
            let refs: Vec<&[u8]> = input.iter().map(Vec::as_slice).collect();
            let windows = mock_windows(&refs);
            assert_eq!(windows.concat(), refs, "every line once, in order");
            for w in &windows {
                let bytes: usize = w.iter().map(|l| l.len() + RECORD_ALLOWANCE_BYTES).sum();
                assert!(w.len() == 1 || bytes <= MOCK_WINDOW_BYTES, "{bytes} bytes");
                assert!(w.len() <= MOCK_WINDOW_RECORDS);
            }
        }
        assert!(mock_windows(&[]).is_empty());
        assert_eq!(mock_windows(&[&b"a"[..]]).len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn round_trip_keeps_keys_in_one_partition_in_order() {
        let topic = "refold.mock.test";
        let b = MockBroker::start(topic, 3).unwrap();
        let brokers = b.bootstrap_servers();
        let p = Producer::new(&brokers).unwrap();
        let text = b"a:1\nb:1\n\n  \nc:1\na:2\n";
        let rep = p
            .produce_jsonl(topic, text, key_before_colon)
            .await
            .unwrap();
        assert_eq!(rep.produced, 4);
        let brokers2 = brokers.clone();
        let got = tokio::task::spawn_blocking(move || read_topic(&brokers2, topic, READ_TIMEOUT))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.len(), 4);
        let a: Vec<&SourceRecord> = got
            .iter()
            .filter(|r| r.key.as_deref() == Some(&b"a"[..]))
            .collect();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].partition, a[1].partition);
        assert!(a[0].offset < a[1].offset);
        assert_eq!(
            (&a[0].value[..], &a[1].value[..]),
            (&b"a:1"[..], &b"a:2"[..])
        );
    }

    /// `default_partition` is where the producer (librdkafka's murmur2_random) puts a key.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn default_partition_is_the_producers() {
        let topic = "refold.partitioner";
        let b = MockBroker::start(topic, 7).unwrap();
        let p = Producer::new(&b.bootstrap_servers()).unwrap();
        for i in 0..200 {
            let key = format!("order-{i:05}");
            let (partition, _) = p.produce(topic, Some(key.as_bytes()), b"{}").await.unwrap();
            assert_eq!(
                partition,
                crate::default_partition(key.as_bytes(), 7),
                "{key}"
            );
        }
    }

    /// More than the mock keeps in one partition: it trims, and every reader says so.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readers_fail_when_the_log_start_moved_past_the_asked_offset() {
        let topic = "refold.trimmed";
        let b = MockBroker::start(topic, 1).unwrap();
        let brokers = b.bootstrap_servers();
        let first = lines(0, 6_000, 1024, 50); // 6 MiB > 5 MiB: the mock trims
        assert_eq!(produce(&brokers, topic, &first).await, first.len());

        // From the start of the history: read_topic and the ESM emulation fail.
        let (bb, t) = (brokers.clone(), topic.to_owned());
        let e = tokio::task::spawn_blocking(move || read_topic(&bb, &t, READ_TIMEOUT))
            .await
            .unwrap()
            .unwrap_err();
        let gone = beyond_retention(&e).unwrap_or_else(|| panic!("not beyond retention: {e}"));
        assert_eq!(
            (gone.topic.as_str(), gone.partition, gone.asked_offset),
            (topic, 0, 0)
        );
        assert!(gone.log_start_offset > 0);
        let text = e.to_string();
        let log_start = format!("log starts at offset {}", gone.log_start_offset);
        for needle in [
            "topic refold.trimmed partition 0",
            "from offset 0",
            log_start.as_str(),
            "retention",
        ] {
            assert!(text.contains(needle), "`{needle}` missing from: {text}");
        }
        let (bb, t) = (brokers.clone(), topic.to_owned());
        let e = tokio::task::spawn_blocking(move || {
            consume_esm_batches(&bb, &t, 500, EsmSource::SelfManaged)
        })
        .await
        .unwrap()
        .unwrap_err();
        assert_eq!(beyond_retention(&e), Some(gone));

        // From the log start, everything still there is read.
        let start = gone.log_start_offset;
        let reader = TopicReader::new(&brokers, topic)
            .unwrap()
            .starting_at([(0, start)]);
        let (reader, got) = read_blocking(reader).await;
        let got = got.unwrap();
        assert_eq!(got.len() as i64, first.len() as i64 - start);
        assert_eq!(got[0].offset, start);
        let end = reader.positions()[&0];
        assert_eq!(end, first.len() as i64);

        // The reader falls behind: the mock trims past its position, and it says so.
        let second = lines(first.len(), 6_000, 1024, 50);
        produce(&brokers, topic, &second).await;
        let (_, got) = read_blocking(reader).await;
        let e = got.unwrap_err();
        let gone = beyond_retention(&e).unwrap_or_else(|| panic!("not beyond retention: {e}"));
        assert_eq!((gone.asked_offset, gone.partition), (end, 0));
        assert!(gone.log_start_offset > end, "{gone:?}");
    }

    /// A stream far longer than the mock keeps, produced in windows and read back after
    /// each: every record arrives, although the log start moved on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn windows_read_back_keep_a_long_stream_whole() {
        let topic = "refold.windows";
        let b = MockBroker::start(topic, 2).unwrap();
        let brokers = b.bootstrap_servers();
        let all = lines(0, 24_000, 700, 997); // about 16 MiB, 8 per partition
        let refs: Vec<&[u8]> = all.iter().map(Vec::as_slice).collect();
        let p = Producer::new(&brokers).unwrap();
        let mut reader = TopicReader::new(&brokers, topic).unwrap();
        let mut got: Vec<SourceRecord> = Vec::new();
        for w in mock_windows(&refs) {
            p.produce_lines(topic, w, key_before_colon).await.unwrap();
            let (r, records) = read_blocking(reader).await;
            reader = r;
            got.extend(records.unwrap());
        }
        assert_eq!(got.len(), all.len(), "every record read");
        let mut values: Vec<&[u8]> = got.iter().map(|r| r.value.as_slice()).collect();
        values.sort();
        let mut want = refs.clone();
        want.sort();
        assert!(values == want, "each line exactly once");
        // The mock did trim: reading the history from offset 0 now fails.
        let e = tokio::task::spawn_blocking(move || read_topic(&brokers, topic, READ_TIMEOUT))
            .await
            .unwrap()
            .unwrap_err();
        let gone: Option<&BeyondRetention> = beyond_retention(&e);
        assert!(gone.is_some(), "{e}");
    }
}
