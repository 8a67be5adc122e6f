//! The target table of a replay: the live table's configuration with the target's name,
//! the target consumer group (its owner and offsets key), and `refold.replay` = the id; and
//! the batch engine on it (the same [`BatchProcessor`] fold-batch runs).

use std::sync::Arc;

use super::plan::ReplayPlan;
use crate::batch::CompiledPipeline;
use crate::dead_letter::DeadLetterStore;
use crate::engine::{BatchProcessor, table_config};
use crate::error::Result;
use crate::table::{CatalogConfig, StateTable, TableConfig, catalog};

/// Table property naming the replay that built a table.
pub const REPLAY_PROPERTY: &str = "refold.replay";

/// The target table's configuration.
pub fn target_config(
    cp: &CompiledPipeline,
    catalog: CatalogConfig,
    plan: &ReplayPlan,
) -> Result<TableConfig> {
    let mut cfg = table_config(cp, catalog)?;
    cfg.table = plan.target_identity()?;
    cfg.consumer_group = plan.target_consumer_group.clone();
    cfg.properties
        .insert(REPLAY_PROPERTY.to_owned(), plan.replay_id.to_string());
    Ok(cfg)
}

/// The pipeline compiled afresh (a compiled pipeline is not `Clone`), same keying rule.
pub fn recompiled(cp: &CompiledPipeline) -> Result<CompiledPipeline> {
    Ok(CompiledPipeline::compile(cp.pipeline.clone())?.with_key_check(cp.key_check))
}

/// The batch engine on the target table (created if missing).
pub async fn open_engine(
    cp: CompiledPipeline,
    catalog: CatalogConfig,
    plan: &ReplayPlan,
    dead_letters: Arc<dyn DeadLetterStore>,
) -> Result<BatchProcessor> {
    let cfg = target_config(&cp, catalog, plan)?;
    let table = StateTable::open_or_create(cfg).await?;
    Ok(BatchProcessor::new(cp, table, dead_letters))
}

/// Opens a table only if the catalog has it (status must not create tables).
pub async fn open_existing(cfg: TableConfig) -> Result<Option<StateTable>> {
    if !table_exists(&cfg).await? {
        return Ok(None);
    }
    StateTable::open_or_create(cfg).await.map(Some)
}

/// Whether the catalog has the table.
pub async fn table_exists(cfg: &TableConfig) -> Result<bool> {
    let (cat, _) = catalog::connect(&cfg.catalog).await?;
    Ok(cat.current_location(&cfg.table.ident()?).await?.is_some())
}
