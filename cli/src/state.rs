//! `refold state <pipeline.yaml> --warehouse DIR [--key K] [--tenant T] [--as-of X]`: the rows
//! of the state table, now or as they were at a checkpoint or time.

use std::path::Path;
use std::process::ExitCode;

use refold::batch::CompiledPipeline;
use refold::table::as_of::{AsOf, fmt_ms};
use refold::table::{CatalogConfig, StateRow, StateTable};

use crate::fold::compile;

/// The pipeline and its state table in a local warehouse (which must exist).
pub async fn open(
    pipeline: &Path,
    warehouse: &Path,
) -> anyhow::Result<(CompiledPipeline, StateTable)> {
    let cp = compile(pipeline)?;
    anyhow::ensure!(
        warehouse.join("catalog.db").exists(),
        "no warehouse at {} (no catalog.db there): run `refold demo --warehouse {}` or the fold-batch function first",
        warehouse.display(),
        warehouse.display()
    );
    let table = refold::compactor::open_table(&cp, CatalogConfig::embedded(warehouse)?).await?;
    Ok((cp, table))
}

pub struct Query<'a> {
    pub key: Option<&'a str>,
    pub tenant: Option<&'a str>,
    /// A checkpoint (or other tag) name, or an RFC 3339 time.
    pub as_of: Option<&'a str>,
}

pub async fn run(pipeline: &Path, warehouse: &Path, q: Query<'_>) -> anyhow::Result<ExitCode> {
    let (cp, table) = open(pipeline, warehouse).await?;
    let rows = match q.as_of {
        None => table.current_rows(q.tenant, q.key).await?,
        Some(text) => {
            let r = table.resolve_as_of(&AsOf::parse(text)?).await?;
            eprintln!(
                "as of {text}: snapshot {} committed {} ({}{}), offsets {}",
                r.snapshot_id,
                fmt_ms(r.snapshot_time_ms),
                r.via,
                if r.exact {
                    ""
                } else {
                    "; newer snapshots up to that time were expired: this is the newest kept"
                },
                serde_json::json!(r.offsets)
            );
            table.rows_at(r.snapshot_id, q.tenant, q.key).await?
        }
    };
    print_rows(&cp, &rows)?;
    Ok(ExitCode::SUCCESS)
}

fn print_rows(cp: &CompiledPipeline, rows: &[StateRow]) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for row in rows {
        let line = serde_json::json!({
            "tenant_id": row.tenant_id,
            cp.key_field.as_str(): row.key,
            "state": row.state,
            "source_partition": row.source_partition,
            "last_offset": row.last_offset,
            "last_event_id": row.last_event_id,
            "last_event_time_us": row.last_event_time_us,
            "events_folded": row.events_folded,
        });
        std::io::Write::write_all(&mut out, format!("{line}\n").as_bytes())?;
    }
    std::io::Write::flush(&mut out)?;
    eprintln!(
        "{} row{}",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
    Ok(())
}
