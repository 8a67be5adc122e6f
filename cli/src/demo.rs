//! `refold demo`: the whole path on the embedded default, in one process.
//!
//! The event stream is produced into an in-process Kafka (librdkafka's mock cluster, keyed
//! by the pipeline's key), read back and cut into Kafka ESM batches exactly as the event
//! source mapping delivers them, and each batch goes to the fold-batch handler, the same
//! code the Lambda runs, writing to a local warehouse. One batch is delivered twice, as
//! at-least-once delivery does; the malformed lines of the stream are the poison records.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use fold_batch::handler::FoldBatch;
use fold_batch::process::BatchProcessor;
use refold::batch::{CompiledPipeline, Counts};
use refold::dead_letter::LocalDeadLetters;
use refold::pipeline;
use refold::table::CatalogConfig;
use refold_kafka::{EsmSource, MockBroker, Producer, consume_esm_batches, envelope_key};

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
    let yaml = std::fs::read_to_string(o.pipeline)
        .with_context(|| format!("reading {}", o.pipeline.display()))?;
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .or_else(|| (name == "KAFKA_CONNECTION").then(|| bootstrap.clone()))
    };
    let loaded = pipeline::parse(&yaml, &o.pipeline.display().to_string(), &env);
    for w in loaded.warnings() {
        eprintln!("{w}");
    }
    let cp = CompiledPipeline::compile(loaded.into_pipeline()?)?;
    let source = cp.pipeline.source_of(cp.pipeline.transformation()).clone();
    broker.create_topic(&source.topic, PARTITIONS)?;

    let producer = Producer::new(&bootstrap)?;
    let key_field = cp.key_field.clone();
    // Lines without a key (the malformed ones) get one derived from their bytes, so that every
    // run puts every record at the same partition and offset (unkeyed records would land on a
    // random partition and shift the offsets of the others).
    let key_of = |line: &[u8]| {
        envelope_key(line, &key_field).or_else(|| Some(format!("unkeyed-{:016x}", fnv1a(line))))
    };
    let produced = producer.produce_jsonl(&source.topic, &text, key_of).await?;
    println!(
        "produced {} records from {} to topic {} ({} partitions) on an in-process Kafka",
        produced.produced,
        o.events.display(),
        source.topic,
        PARTITIONS
    );

    let batches = consume_esm_batches(
        &bootstrap,
        &source.topic,
        o.batch_size,
        EsmSource::SelfManaged,
    )?;
    std::fs::create_dir_all(o.warehouse)
        .with_context(|| format!("creating {}", o.warehouse.display()))?;
    let dead_letter_dir = o.warehouse.join("dead-letters");
    let catalog = CatalogConfig::embedded(o.warehouse)?;
    let processor = BatchProcessor::open(
        cp,
        catalog,
        Arc::new(LocalDeadLetters::new(&dead_letter_dir)),
    )
    .await?;
    let handler = FoldBatch::new(processor).without_metrics();

    // Deliver every batch, then the first one again (at-least-once delivery).
    let mut total = Counts::default();
    let mut dead_letters = Vec::new();
    let deliveries = (0..batches.len()).chain(std::iter::once(0).filter(|_| !batches.is_empty()));
    for (n, i) in deliveries.enumerate() {
        let event = fold_batch::esm::parse_event(batches[i].clone())?;
        let (response, report) = handler.handle_with_report(&event).await?;
        let c = report.counts;
        let again = if n >= batches.len() {
            " (delivered again)"
        } else {
            ""
        };
        println!(
            "batch {:>2}{again}: {:>5} records: {:>5} folded, {:>3} filtered, {} dead-lettered, {:>5} already applied; {} keys, fold {:.1} ms, commit {:.1} ms",
            i + 1,
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
            response.batch_item_failures.is_empty(),
            "the handler asked for a retry: {response:?}"
        );
        total += c;
        dead_letters.extend(report.dead_letters);
    }
    assert!(total.balanced(), "every record is accounted for: {total:?}");
    println!(
        "\ntotal: {} records delivered: {} folded, {} filtered, {} dead-lettered, {} already applied",
        total.received, total.folded, total.filtered, total.dead_lettered, total.already_applied
    );

    let table = handler.processor().table();
    let rows = table.current_rows(None, None).await?;
    let mut by_status: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in &rows {
        let status = r
            .state
            .get("status")
            .and_then(|s| s.as_str())
            .unwrap_or("?")
            .to_owned();
        *by_status.entry((r.tenant_id.clone(), status)).or_default() += 1;
    }
    let sink = handler
        .processor()
        .pipeline()
        .pipeline
        .sink_of(handler.processor().pipeline().pipeline.transformation())
        .table
        .clone();
    println!("\nthe view {sink}: {} rows", rows.len());
    println!("  {:<16} {:<10} {:>6}", "tenant_id", "status", "rows");
    for ((tenant, status), n) in &by_status {
        println!("  {tenant:<16} {status:<10} {n:>6}");
    }
    println!("\na few rows:");
    for r in rows.iter().take(3) {
        println!(
            "  {} {} = {} (events folded {}, last offset {} in partition {})",
            r.tenant_id,
            r.key,
            serde_json::Value::Object(r.state.clone()),
            r.events_folded,
            r.last_offset,
            r.source_partition
        );
    }
    println!("\ndead letters (in {}):", dead_letter_dir.display());
    if dead_letters.is_empty() {
        println!("  none in this run (a run on an existing warehouse folds nothing new)");
    }
    for d in &dead_letters {
        println!(
            "  partition {} offset {}: {} ({})",
            d.partition, d.offset, d.reason, d.kind
        );
    }
    let wh = std::path::absolute(o.warehouse)?;
    let ns = sink.namespace.join(".");
    println!(
        "\nthe table is in {wh} (catalog {wh}/catalog.db, catalog name `refold`). Query it:\n\n  \
         python3 -c \"from pyiceberg.catalog.sql import SqlCatalog; \
         c = SqlCatalog('refold', uri='sqlite:///{wh}/catalog.db', warehouse='file://{wh}'); \
         print(c.load_table('{ns}.{name}').scan().to_arrow().to_pandas())\"\n\n  \
         duckdb -c \"INSTALL iceberg; LOAD iceberg; SELECT status, count(*) FROM (SELECT json_extract_string(state, '$.status') AS status \
         FROM iceberg_scan('$(ls -t {wh}/{nspath}/{name}/metadata/*.metadata.json | head -1)')) GROUP BY status\"\n\n\
         done in {:.1} s",
        started.elapsed().as_secs_f64(),
        wh = wh.display(),
        name = sink.name,
        nspath = sink.namespace.join("/"),
    );
    Ok(ExitCode::SUCCESS)
}

/// FNV-1a, 64 bits: a stable hash of a record's bytes.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
