//! `refold history <pipeline.yaml> --warehouse DIR --key K [--tenant T] [--as-of T]
//! [--from-start] [--json]`: one entity's audit trail (`refold::history`).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use refold::archive::Archive;
use refold::engine::archive_config;
use refold::history::{EntityHistory, HistoryQuery, Start, rebuild};

pub struct Args<'a> {
    pub key: &'a str,
    pub tenant: Option<&'a str>,
    pub as_of: Option<&'a str>,
    pub from_start: bool,
    pub json: bool,
}

pub async fn run(pipeline: &Path, warehouse: &Path, a: Args<'_>) -> anyhow::Result<ExitCode> {
    let (cp, table) = crate::state::open(pipeline, warehouse).await?;
    let catalog = refold::table::CatalogConfig::embedded(warehouse)?;
    let Some(cfg) = archive_config(&cp, catalog) else {
        anyhow::bail!(
            "pipeline `{}` keeps no event archive (archive: false on its source): there is no \
             history to read",
            cp.name()
        );
    };
    let archive = Archive::open_or_create(cfg).await?;
    let as_of_us = a
        .as_of
        .map(|t| {
            refold::envelope::parse_rfc3339_us(t).map_err(|e| {
                anyhow::anyhow!("--as-of `{t}`: {e}; expected e.g. 2026-02-12T10:30:00Z")
            })
        })
        .transpose()?;
    let q = HistoryQuery {
        tenant: a.tenant,
        key: a.key,
        as_of_us,
        from_start: a.from_start,
    };
    let h = rebuild(&cp, Some(&table), &archive, &q).await?;
    print(&h, a.json)?;
    Ok(ExitCode::SUCCESS)
}

fn print(h: &EntityHistory, json: bool) -> anyhow::Result<()> {
    match &h.start {
        Start::FirstEvent => eprintln!("({}, {}): from the first archived event", h.tenant, h.key),
        Start::Checkpoint {
            name,
            offsets,
            state,
            ..
        } => eprintln!(
            "({}, {}): from checkpoint {name} (offsets {}), state {}",
            h.tenant,
            h.key,
            serde_json::json!(offsets),
            state.as_ref().map_or("none".to_owned(), |s| s.to_string())
        ),
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for s in &h.steps {
        let e = &s.event;
        let state = s.state.as_ref().map(|s| s.to_value());
        if json {
            let mut line = serde_json::json!({
                "event_id": e.event_id,
                "partition": e.kafka_partition,
                "offset": e.kafka_offset,
                "event_type": e.event_type,
                "timestamp": e.event_time_text,
                "state": state,
            });
            if let Some(err) = &s.error {
                line["error"] = serde_json::Value::from(err.as_str());
            }
            writeln!(out, "{line}")?;
        } else {
            let after = match &s.error {
                Some(err) => format!("set aside: {err}"),
                None => state.map_or("none".to_owned(), |v| v.to_string()),
            };
            writeln!(
                out,
                "{}  {}/{}  {}  {}  -> {after}",
                e.event_time_text, e.kafka_partition, e.kafka_offset, e.event_id, e.event_type
            )?;
        }
    }
    out.flush()?;
    eprintln!(
        "{} event(s) applied",
        h.steps.iter().filter(|s| s.error.is_none()).count()
    );
    Ok(())
}
