//! The catalog a function opens, from its environment: `REFOLD_CATALOG=glue` here, anything
//! else through `refold::engine::config::catalog_from_env` (SQL).
//!
//! | variable | meaning (Glue) |
//! |---|---|
//! | `REFOLD_CATALOG` | `glue` (else `sql`, the default) |
//! | `REFOLD_WAREHOUSE` | `s3://bucket/prefix`: tables of databases without a location go under `<warehouse>/<database>.db/<table>` |
//! | `REFOLD_GLUE_CATALOG_ID` | the account id of the catalog (default: the caller's) |
//! | `REFOLD_GLUE_ENDPOINT` | Glue endpoint override (moto); the SDK also reads `AWS_ENDPOINT_URL_GLUE` |
//! | `REFOLD_S3_ENDPOINT`, `AWS_*` | the tables' object store, as for the SQL catalog |

use std::sync::Arc;

use refold::engine::config::{self, CatalogKind};
use refold::error::{Error, ErrorKind, Result};
use refold::replay::store::ObjectReplayStore;
use refold::table::{CatalogConfig, SharedCatalogSwap};

use crate::glue::{GlueCatalogSwap, GlueConfig};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The Glue catalog's settings from the environment.
pub fn glue_config_from_env() -> Result<GlueConfig> {
    let warehouse = env("REFOLD_WAREHOUSE").ok_or_else(|| {
        Error::new(
            ErrorKind::Config,
            "REFOLD_WAREHOUSE is not set (s3://bucket/prefix for the Glue catalog)",
        )
    })?;
    Ok(GlueConfig {
        warehouse,
        catalog_id: env("REFOLD_GLUE_CATALOG_ID"),
        endpoint: env("REFOLD_GLUE_ENDPOINT"),
        storage: config::storage_from_env(),
    })
}

/// The catalog `REFOLD_CATALOG` names: Glue (connected here) or SQL (refold's own).
pub async fn catalog_from_env() -> Result<CatalogConfig> {
    match config::catalog_kind_from_env()? {
        CatalogKind::Sql => config::catalog_from_env(),
        CatalogKind::Glue => {
            let cfg = glue_config_from_env()?;
            let swap = GlueCatalogSwap::connect(&cfg).await?;
            Ok(CatalogConfig::Adapter {
                swap: SharedCatalogSwap(Arc::new(swap)),
                storage: cfg.storage,
            })
        }
    }
}

/// Replays are kept in the warehouse: the SQL catalog's, or `REFOLD_WAREHOUSE` beside an
/// adapter catalog (Glue), which has no warehouse of its own.
pub fn replay_store_from_env(catalog: &CatalogConfig) -> Result<ObjectReplayStore> {
    match catalog {
        CatalogConfig::Adapter { storage, .. } => {
            let warehouse = env("REFOLD_WAREHOUSE").ok_or_else(|| {
                Error::new(
                    ErrorKind::Config,
                    "REFOLD_WAREHOUSE is not set (where replays are kept, s3://bucket/prefix)",
                )
            })?;
            ObjectReplayStore::at(&warehouse, storage)
        }
        _ => ObjectReplayStore::for_catalog(catalog),
    }
}
