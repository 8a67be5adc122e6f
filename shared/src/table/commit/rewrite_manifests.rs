//! A manifest rewrite (Iceberg's `RewriteManifests`, operation `replace`): main's live files,
//! unchanged (each entry keeps its snapshot id and sequence numbers, so which deletes apply
//! to which data files is unchanged), listed in fewer manifests. The new manifests are
//! written once, for a snapshot id fixed in advance; a lost compare-and-set re-bases them on
//! the new current snapshot as long as every manifest they replace is still listed there
//! (fold-batch commits carry manifests forward untouched), else the caller plans again.

use std::collections::{HashMap, HashSet};

use iceberg::TableIdent;
use iceberg::io::FileIO;
use iceberg::spec::{MAIN_BRANCH, ManifestFile, Operation, Snapshot, Summary};

use super::super::catalog::CatalogSwap;
use super::super::files;
use super::super::{Loaded, ResultExt};
use super::{CommitResult, add_totals, now_ms, publish};
use crate::error::{ErrorKind, Result};

/// Manifests written to replace others, for snapshot `snapshot_id`.
#[derive(Debug, Clone)]
pub struct ManifestRewrite {
    pub snapshot_id: i64,
    /// Paths of the current manifests the new ones replace (dropped from the list).
    pub replaced: HashSet<String>,
    pub created: Vec<ManifestFile>,
    /// Live entries copied into `created`.
    pub entries: usize,
    /// Snapshot summary properties (the offset maps, refold's keys).
    pub summary: HashMap<String, String>,
}

/// Commits `rw` on `base`; `Lost` when a replaced manifest is no longer current or the
/// snapshot id was taken meanwhile (plan again), or the compare-and-set lost (re-base).
pub async fn commit_rewrite_manifests(
    io: &FileIO,
    catalog: &dyn CatalogSwap,
    ident: &TableIdent,
    base: &Loaded,
    rw: &ManifestRewrite,
) -> Result<CommitResult> {
    let md = base.metadata.as_ref();
    let current = files::manifest_list(io, md).await?;
    let listed: HashSet<&str> = current.iter().map(|m| m.manifest_path.as_str()).collect();
    if let Some(gone) = rw.replaced.iter().find(|p| !listed.contains(p.as_str())) {
        return Ok(CommitResult::Lost(format!(
            "manifest {gone} is no longer listed by the current snapshot"
        )));
    }
    if md.snapshot_by_id(rw.snapshot_id).is_some() {
        return Ok(CommitResult::Lost(format!(
            "snapshot id {} was taken meanwhile",
            rw.snapshot_id
        )));
    }
    let parent = md.current_snapshot().cloned();
    let seq = md.next_sequence_number();
    let kept: Vec<ManifestFile> = current
        .into_iter()
        .filter(|m| !rw.replaced.contains(&m.manifest_path))
        .collect();
    let kept_n = kept.len();
    let list_path = format!(
        "{}/metadata/snap-{}-1-{}.avro",
        md.location(),
        rw.snapshot_id,
        uuid::Uuid::new_v4()
    );
    let out = io
        .new_output(&list_path)
        .io(|| format!("create {list_path}"))?;
    let mut lw = iceberg::spec::ManifestListWriter::v2(
        out.writer().await.io(|| format!("create {list_path}"))?,
        rw.snapshot_id,
        parent.as_ref().map(|p| p.snapshot_id()),
        seq,
    );
    lw.add_manifests(rw.created.iter().cloned().chain(kept))
        .kind(ErrorKind::Internal, || "manifest list".into())?;
    lw.close().await.io(|| format!("write {list_path}"))?;

    let mut props = rw.summary.clone();
    for (k, v) in [
        ("manifests-created", rw.created.len()),
        ("manifests-kept", kept_n),
        ("manifests-replaced", rw.replaced.len()),
        ("entries-processed", rw.entries),
    ] {
        props.insert(k.to_string(), v.to_string());
    }
    add_totals(parent.as_ref().map(|p| p.summary()), &mut props);
    let snapshot = Snapshot::builder()
        .with_snapshot_id(rw.snapshot_id)
        .with_parent_snapshot_id(parent.as_ref().map(|p| p.snapshot_id()))
        .with_sequence_number(seq)
        .with_timestamp_ms(now_ms().max(md.last_updated_ms()))
        .with_manifest_list(list_path.clone())
        .with_summary(Summary {
            operation: Operation::Replace,
            additional_properties: props,
        })
        .with_schema_id(md.current_schema_id())
        .build();
    let builder = md
        .clone()
        .into_builder(Some(base.location.clone()))
        .set_branch_snapshot(snapshot, MAIN_BRANCH)
        .kind(ErrorKind::Internal, || "add snapshot".into())?;
    // A lost swap removes the list only: the manifests are re-based on the next attempt.
    if publish(io, catalog, ident, base, builder, vec![list_path]).await? {
        Ok(CommitResult::Committed {
            snapshot_id: rw.snapshot_id,
        })
    } else {
        Ok(CommitResult::Lost("catalog pointer moved".into()))
    }
}
