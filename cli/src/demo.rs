//! `refold demo`: the whole path on the embedded default, in one process.
//!
//! The event stream is produced into an in-process Kafka (librdkafka's mock cluster, keyed
//! by the pipeline's key), read back, cut into batches and handed to the batch engine
//! (`refold::engine`, the code path the fold-batch Lambda runs), writing to a local
//! warehouse. One batch is delivered twice, as at-least-once delivery does; the malformed
//! lines of the stream are the poison records.
//!
//! The mock keeps only the newest 5 MiB of each partition, read or not, so the stream goes
//! in windows, each read back before the next is produced. Nothing is lost silently: the
//! reader fails when a partition's log starts past its position (beyond retention), and the
//! demo fails unless every line was produced, read back and received by the engine.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use refold::batch::{CompiledPipeline, Counts};
use refold::dead_letter::{DeadLetter, LocalDeadLetters};
use refold::engine::BatchProcessor;
use refold::envelope::Envelope;
use refold::pipeline;
use refold::record::SourceRecord;
use refold::table::CatalogConfig;
use refold_kafka::mock::MOCK_PARTITION_LOG_BYTES;
use refold_kafka::{MockBroker, ProduceReport, Producer, TopicReader, jsonl_lines, mock_windows};

/// Kafka partitions of the demo topic.
const PARTITIONS: i32 = 3;

pub struct Options<'a> {
    pub pipeline: &'a Path,
    pub events: &'a Path,
    pub warehouse: &'a Path,
    pub batch_size: usize,
}

pub async fn run(o: Options<'_>) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(o.batch_size > 0, "--batch-size must be at least 1");
    let started = Instant::now();
    let text =
        std::fs::read(o.events).with_context(|| format!("reading {}", o.events.display()))?;

    // The pipeline's source topic, on an in-process broker. `${KAFKA_CONNECTION}` resolves
    // to it unless the environment sets it.
    let broker = MockBroker::start("refold-demo-bootstrap", 1)?;
    let bootstrap = broker.bootstrap_servers();
    let cp = compile(o.pipeline, &bootstrap)?;
    let topic = cp
        .pipeline
        .source_of(cp.pipeline.transformation())
        .topic
        .clone();
    broker.create_topic(&topic, PARTITIONS)?;
    let key_field = cp.key_field.clone();
    let dead_letter_dir = o.warehouse.join("dead-letters");
    let engine = open_engine(o.warehouse, &dead_letter_dir, cp).await?;

    let lines = jsonl_lines(&text);
    println!(
        "producing {} records from {} to topic {topic} ({PARTITIONS} partitions) on an \
         in-process Kafka, reading each window back before the next (it keeps {} MiB per \
         partition)",
        lines.len(),
        o.events.display(),
        MOCK_PARTITION_LOG_BYTES / (1024 * 1024)
    );
    let mut feed = Feed::new(&engine, o.batch_size);
    let produced = stream(&lines, &bootstrap, &topic, &key_field, &mut feed).await?;
    feed.finish().await?;
    report_totals(lines.len(), produced.produced, &feed)?;
    print_view(&engine, &dead_letter_dir, &feed.dead_letters, o.warehouse).await?;
    println!("\ndone in {:.1} s", started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

fn compile(path: &Path, bootstrap: &str) -> anyhow::Result<CompiledPipeline> {
    let yaml =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .or_else(|| (name == "KAFKA_CONNECTION").then(|| bootstrap.to_owned()))
    };
    let loaded = pipeline::parse(&yaml, &path.display().to_string(), &env);
    for w in loaded.warnings() {
        eprintln!("{w}");
    }
    Ok(CompiledPipeline::compile(loaded.into_pipeline()?)?)
}

/// The batch engine on the local warehouse, dead letters in `dead_letter_dir`.
async fn open_engine(
    warehouse: &Path,
    dead_letter_dir: &Path,
    cp: CompiledPipeline,
) -> anyhow::Result<BatchProcessor> {
    std::fs::create_dir_all(warehouse)
        .with_context(|| format!("creating {}", warehouse.display()))?;
    let catalog = CatalogConfig::embedded(warehouse)?;
    let dead_letters = Arc::new(LocalDeadLetters::new(dead_letter_dir));
    Ok(BatchProcessor::open(cp, catalog, dead_letters).await?)
}

/// Produces the lines window by window (the in-process broker keeps only the newest few MiB
/// of each partition, read or not), reading each window back and feeding it to the engine
/// before producing the next.
async fn stream(
    lines: &[&[u8]],
    bootstrap: &str,
    topic: &str,
    key_field: &str,
    feed: &mut Feed<'_>,
) -> anyhow::Result<ProduceReport> {
    let producer = Producer::new(bootstrap)?;
    // Lines without a key (the malformed ones) get one derived from their bytes, so that every
    // run puts every record at the same partition and offset (unkeyed records would land on a
    // random partition and shift the offsets of the others).
    let key_of = |line: &[u8]| {
        let key = Envelope::decode(line)
            .ok()
            .and_then(|e| e.key(key_field).ok().map(|k| k.into_owned()));
        key.or_else(|| Some(format!("unkeyed-{:016x}", fnv1a(line))))
    };
    let mut produced = ProduceReport::default();
    let mut reader = TopicReader::new(bootstrap, topic)?;
    for window in mock_windows(lines) {
        produced.absorb(&producer.produce_lines(topic, window, key_of).await?);
        let (r, records) = read_back(reader).await?;
        reader = r;
        feed.push(records).await?;
    }
    Ok(produced)
}

/// Reads what the topic got since the last read (on a blocking thread: the reader polls).
async fn read_back(mut reader: TopicReader) -> anyhow::Result<(TopicReader, Vec<SourceRecord>)> {
    let (reader, records) = tokio::task::spawn_blocking(move || {
        let records = reader.read_available();
        (reader, records)
    })
    .await
    .context("the thread reading the in-process Kafka")?;
    let records = records.context("reading the demo topic back from the in-process Kafka")?;
    Ok((reader, records))
}

/// Checks that nothing was lost between the file, Kafka and the engine, and prints the
/// totals.
fn report_totals(lines: usize, produced: usize, feed: &Feed<'_>) -> anyhow::Result<()> {
    let total = feed.total;
    anyhow::ensure!(
        total.balanced(),
        "the engine's counts do not account for every record: {total:?}"
    );
    check_nothing_lost(lines, produced, feed.read, feed.received_once)?;
    println!(
        "\nproduced {produced}, read back {}, received by the engine {} (then batch 1 once more)",
        feed.read, feed.received_once
    );
    println!(
        "total: {} records delivered: {} folded, {} filtered, {} dead-lettered, {} already applied",
        total.received, total.folded, total.filtered, total.dead_lettered, total.already_applied
    );
    Ok(())
}

/// Every line produced, every record produced read back, every record read handed to the
/// engine once: otherwise the demo says where records went missing, and fails.
fn check_nothing_lost(
    lines: usize,
    produced: usize,
    read: usize,
    received: usize,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        produced == lines,
        "the stream has {lines} records but {produced} were produced"
    );
    anyhow::ensure!(
        read == produced,
        "{produced} records were produced but {read} were read back from the in-process Kafka"
    );
    anyhow::ensure!(
        received == produced,
        "{produced} records were produced but the engine received {received}"
    );
    Ok(())
}

/// The view: rows per tenant and status, a few rows, the dead letters, how to query it.
async fn print_view(
    engine: &BatchProcessor,
    dead_letter_dir: &Path,
    dead_letters: &[DeadLetter],
    warehouse: &Path,
) -> anyhow::Result<()> {
    let rows = engine.table().current_rows(None, None).await?;
    let mut by_status: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in &rows {
        let state = r.state.to_value();
        let status = state
            .get("status")
            .and_then(|s| s.as_str())
            .unwrap_or("?")
            .to_owned();
        *by_status.entry((r.tenant_id.clone(), status)).or_default() += 1;
    }
    let pipeline = &engine.pipeline().pipeline;
    let sink = &pipeline.sink_of(pipeline.transformation()).table;
    println!("\nthe view {sink}: {} rows", rows.len());
    println!("  {:<16} {:<10} {:>6}", "tenant_id", "status", "rows");
    for ((tenant, status), n) in &by_status {
        println!("  {tenant:<16} {status:<10} {n:>6}");
    }
    println!("\na few rows:");
    for r in rows.iter().take(3) {
        println!(
            "  {} {} = {} (events folded {}, last offset {} in partition {})",
            r.tenant_id, r.key, r.state, r.events_folded, r.last_offset, r.source_partition
        );
    }
    println!("\ndead letters (in {}):", dead_letter_dir.display());
    if dead_letters.is_empty() {
        println!("  none in this run (a run on an existing warehouse folds nothing new)");
    }
    for d in dead_letters {
        println!(
            "  partition {} offset {}: {} ({})",
            d.partition, d.offset, d.reason, d.kind
        );
    }
    let wh = std::path::absolute(warehouse)?;
    let ns = sink.namespace.join(".");
    println!(
        "\nthe table is in {wh} (catalog {wh}/catalog.db, catalog name `refold`). Query it:\n\n  \
         python3 -c \"from pyiceberg.catalog.sql import SqlCatalog; \
         c = SqlCatalog('refold', uri='sqlite:///{wh}/catalog.db', warehouse='file://{wh}'); \
         print(c.load_table('{ns}.{name}').scan().to_arrow().to_pandas())\"\n\n  \
         duckdb -c \"INSTALL iceberg; LOAD iceberg; SELECT status, count(*) FROM (SELECT json_extract_string(state, '$.status') AS status \
         FROM iceberg_scan('$(ls -t {wh}/{nspath}/{name}/metadata/*.metadata.json | head -1)')) GROUP BY status\"\n\n  \
         offline, with the extensions from the test venv (`make test` installs it; README, \"Reading the view with DuckDB\"):\n  \
         ~/.cache/refold/venv/bin/python tests/py/duckdb_read.py --catalog {wh}/catalog.db --table {ns}.{name}",
        wh = wh.display(),
        name = sink.name,
        nspath = sink.namespace.join("/"),
    );
    Ok(())
}

/// FNV-1a, 64 bits: a stable hash of a record's bytes.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Cuts records into batches of `batch_size` as they come, hands each to the engine, prints
/// what it did, and adds it up.
struct Feed<'e> {
    engine: &'e BatchProcessor,
    batch_size: usize,
    pending: Vec<SourceRecord>,
    batches: usize,
    /// The first batch, delivered again at the end (at-least-once delivery).
    first: Option<Vec<SourceRecord>>,
    /// Records read from Kafka.
    read: usize,
    /// Records the engine received, not counting the repeated delivery.
    received_once: usize,
    total: Counts,
    dead_letters: Vec<DeadLetter>,
}

impl<'e> Feed<'e> {
    fn new(engine: &'e BatchProcessor, batch_size: usize) -> Self {
        Self {
            engine,
            batch_size,
            pending: Vec::new(),
            batches: 0,
            first: None,
            read: 0,
            received_once: 0,
            total: Counts::default(),
            dead_letters: Vec::new(),
        }
    }

    /// Takes records read, delivers every full batch.
    async fn push(&mut self, records: Vec<SourceRecord>) -> anyhow::Result<()> {
        self.read += records.len();
        self.pending.extend(records);
        while self.pending.len() >= self.batch_size {
            let rest = self.pending.split_off(self.batch_size);
            let batch = std::mem::replace(&mut self.pending, rest);
            self.deliver_new(batch).await?;
        }
        Ok(())
    }

    /// Delivers what is left, then the first batch again.
    async fn finish(&mut self) -> anyhow::Result<()> {
        if !self.pending.is_empty() {
            let batch = std::mem::take(&mut self.pending);
            self.deliver_new(batch).await?;
        }
        if let Some(first) = self.first.take() {
            let c = self.deliver(first, "batch  1 (delivered again)").await?;
            self.total += c;
        }
        Ok(())
    }

    async fn deliver_new(&mut self, records: Vec<SourceRecord>) -> anyhow::Result<()> {
        if self.first.is_none() {
            self.first = Some(records.clone());
        }
        self.batches += 1;
        let n = records.len();
        let name = format!("batch {:>2}", self.batches);
        let c = self.deliver(records, &name).await?;
        anyhow::ensure!(
            c.received == n,
            "{name} had {n} records but the engine received {}",
            c.received
        );
        self.received_once += c.received;
        self.total += c;
        Ok(())
    }

    async fn deliver(&mut self, records: Vec<SourceRecord>, name: &str) -> anyhow::Result<Counts> {
        let report = self.engine.process(records, Vec::new()).await?;
        let c = report.counts;
        println!(
            "{name}: {:>5} records: {:>5} folded, {:>3} filtered, {} dead-lettered, {:>5} already applied; {} keys, fold {:.1} ms, commit {:.1} ms",
            c.received,
            c.folded,
            c.filtered,
            c.dead_lettered,
            c.already_applied,
            report.keys,
            report.fold_ms,
            report.commit_ms
        );
        anyhow::ensure!(
            report.failed_at.is_empty(),
            "the engine asked for {name} to be delivered again from {:?} (partition: offset)",
            report.failed_at
        );
        self.dead_letters.extend(report.dead_letters);
        Ok(c)
    }
}
