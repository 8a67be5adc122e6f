//! `refold state <pipeline.yaml> --warehouse DIR [--key K] [--tenant T]`: current rows.

use std::path::Path;
use std::process::ExitCode;

use refold::table::{CatalogConfig, StateTable};

use crate::fold::compile;

pub async fn run(
    pipeline: &Path,
    warehouse: &Path,
    key: Option<&str>,
    tenant: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let cp = compile(pipeline)?;
    anyhow::ensure!(
        warehouse.join("catalog.db").exists(),
        "no warehouse at {} (no catalog.db there): run `refold demo --warehouse {}` or the fold-batch function first",
        warehouse.display(),
        warehouse.display()
    );
    let config = refold::engine::table_config(&cp, CatalogConfig::embedded(warehouse)?)?;
    let table = StateTable::open_or_create(config).await?;
    let rows = table.current_rows(tenant, key).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for row in &rows {
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
    Ok(ExitCode::SUCCESS)
}
