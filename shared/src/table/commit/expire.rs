//! Removing chosen snapshots from the metadata (what `compactor::policy::snapshots_to_expire`
//! picked, re-evaluated on every attempt's base). Metadata only: their files stay until the
//! orphan step finds them unreferenced and old enough. Refuses to remove main's current
//! snapshot or any referenced one (a tag, a branch): those are never the policy's to drop.

use iceberg::TableIdent;
use iceberg::io::FileIO;

use super::super::Loaded;
use super::super::catalog::CatalogSwap;
use super::{CommitResult, publish, refs};
use crate::error::{Error, ErrorKind, Result};

/// Removes `ids` (those still present) from `base`'s metadata.
pub async fn commit_remove_snapshots(
    io: &FileIO,
    catalog: &dyn CatalogSwap,
    ident: &TableIdent,
    base: &Loaded,
    ids: &[i64],
) -> Result<CommitResult> {
    let md = base.metadata.as_ref();
    let protected: Vec<i64> = refs(md)?
        .values()
        .map(|r| r.snapshot_id)
        .chain(md.current_snapshot_id())
        .collect();
    if let Some(id) = ids.iter().find(|id| protected.contains(id)) {
        return Err(Error::new(
            ErrorKind::Internal,
            format!(
                "refusing to expire snapshot {id}: main's current or referenced by a tag or branch"
            ),
        ));
    }
    let present: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| md.snapshot_by_id(*id).is_some())
        .collect();
    let current = md.current_snapshot_id().unwrap_or(0);
    if present.is_empty() {
        return Ok(CommitResult::Committed {
            snapshot_id: current,
        });
    }
    let builder = md
        .clone()
        .into_builder(Some(base.location.clone()))
        .remove_snapshots(&present);
    if publish(io, catalog, ident, base, builder, vec![]).await? {
        Ok(CommitResult::Committed {
            snapshot_id: current,
        })
    } else {
        Ok(CommitResult::Lost("catalog pointer moved".into()))
    }
}
