//! `refold fold <pipeline.yaml> --events FILE.jsonl`: the whole stream folded in memory.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use refold::batch::{CompiledPipeline, KeyCheck};
use refold::pipeline;

mod output;
mod stream;

/// Loads a pipeline for a command that works offline (`fold`, `state`) and fails with every
/// problem listed when it is not valid. Such commands never connect to the source, so an
/// unset `${VAR}` is replaced by a marker (with a note) rather than stopping them;
/// `refold validate` and the functions still require every variable.
pub fn compile(path: &Path) -> anyhow::Result<CompiledPipeline> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let unset = std::cell::RefCell::new(Vec::new());
    let env = |name: &str| {
        std::env::var(name).ok().or_else(|| {
            unset.borrow_mut().push(name.to_owned());
            Some(format!("<unset {name}>"))
        })
    };
    let loaded = pipeline::parse(&text, &path.display().to_string(), &env);
    for name in unset.borrow().iter() {
        eprintln!("note: ${{{name}}} is not set; not needed offline");
    }
    for problem in loaded.warnings() {
        eprintln!("{problem}");
    }
    let pipeline = loaded.into_pipeline()?;
    Ok(CompiledPipeline::compile(pipeline)?)
}

pub fn run(pipeline_path: &Path, events: &Path, batch_size: usize) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(batch_size > 0, "--batch-size must be at least 1");
    // A file is one partition: no key can sit in two, so records need no Kafka key.
    // One thread a stage: the stream decodes the next batch while it folds this one, which
    // keeps both cores busy already (splitting each stage too measured no faster).
    let cp = compile(pipeline_path)?
        .with_key_check(KeyCheck::Off)
        .with_threads(1);
    let file =
        std::fs::File::open(events).with_context(|| format!("reading {}", events.display()))?;
    let view = stream::fold_file(&cp, file, &events.display().to_string(), batch_size)
        .with_context(|| format!("reading {}", events.display()))?;

    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for row in view.rows.values() {
        serde_json::to_writer(&mut out, &output::Line::new(row, &cp.key_field))?;
        std::io::Write::write_all(&mut out, b"\n")?;
    }
    std::io::Write::flush(&mut out)?;
    for dl in &view.dead_letters {
        eprintln!(
            "{}:{}: {} ({})",
            events.display(),
            dl.offset + 1,
            dl.reason,
            dl.kind
        );
    }
    let c = view.counts;
    eprintln!(
        "{} records: {} folded, {} filtered, {} rejected{}; {} keys",
        c.received,
        c.folded,
        c.filtered,
        c.dead_lettered + c.skipped,
        if c.deferred > 0 {
            format!(
                ", {} not folded after a failure (on_error: fail)",
                c.deferred
            )
        } else {
            String::new()
        },
        view.rows.len()
    );
    Ok(ExitCode::SUCCESS)
}
