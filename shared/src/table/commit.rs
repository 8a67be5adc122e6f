//! The only place that writes Iceberg metadata: row-delta, replace and tag commits, built with
//! iceberg's public spec writers (`ManifestWriter`, `ManifestListWriter`, `Snapshot`,
//! `TableMetadataBuilder`) and published with the catalog's compare-and-set.
//!
//! A snapshot commit, on a loaded base:
//! 1. carry the base's manifests forward; rewrite those holding files to remove (entries
//!    marked DELETED, the rest EXISTING); drop manifests with no live file left;
//! 2. one new data manifest and one new delete manifest for the added files, at the new
//!    sequence number;
//! 3. a manifest list, the snapshot (summary: the caller's properties, then the computed
//!    metrics and running totals), the next `vN-<uuid>.metadata.json`;
//! 4. swap the catalog pointer from the base's file to the new one; a lost swap removes what
//!    this attempt wrote and reports `Lost` (the caller reloads and decides).

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use iceberg::io::FileIO;
use iceberg::spec::{
    DataFile, MAIN_BRANCH, ManifestContentType, ManifestFile, ManifestWriter,
    ManifestWriterBuilder, Operation, Snapshot, SnapshotReference, SnapshotRetention,
    SnapshotSummaryCollector, Summary, TableMetadata,
};
use iceberg::{MetadataLocation, TableIdent, TableRequirement};

use super::catalog::{CatalogSwap, SwapRequest};
use super::files::{self, ManifestCache};
use super::{CHECKPOINT_TAG_PREFIX, Loaded, ResultExt};
use crate::error::{Error, ErrorKind, Result};

pub mod expire;
pub mod rewrite_manifests;

/// What one snapshot changes.
#[derive(Debug, Clone)]
pub struct SnapshotChange {
    pub operation: Operation,
    pub added_data: Vec<DataFile>,
    pub added_deletes: Vec<DataFile>,
    /// Live data or delete files to remove (replace/compaction); all must still be live.
    pub removed_paths: HashSet<String>,
    /// The one source partition every removed file belongs to, when known: manifests that
    /// cannot hold it are carried forward unread.
    pub removed_partition: Option<i32>,
    /// Snapshot summary properties (the offset map, refold's own keys).
    pub summary: HashMap<String, String>,
    /// Table properties set in the same metadata update (the offset map again: it survives
    /// other engines' rewrites and snapshot expiry).
    pub properties: HashMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitResult {
    Committed {
        snapshot_id: i64,
    },
    /// The compare-and-set lost, or the base no longer fits; nothing was published.
    Lost(String),
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(crate) fn new_snapshot_id(md: &TableMetadata) -> i64 {
    loop {
        let (a, b) = uuid::Uuid::new_v4().as_u64_pair();
        let id = ((a ^ b) & (i64::MAX as u64)) as i64;
        if id != 0 && md.snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

/// Java-style running totals: total-X = parent's total-X + added-X - removed-X.
fn add_totals(parent: Option<&Summary>, props: &mut HashMap<String, String>) {
    const KEYS: [(&str, &str, &str); 6] = [
        ("total-data-files", "added-data-files", "deleted-data-files"),
        (
            "total-delete-files",
            "added-delete-files",
            "removed-delete-files",
        ),
        ("total-records", "added-records", "deleted-records"),
        ("total-files-size", "added-files-size", "removed-files-size"),
        (
            "total-equality-deletes",
            "added-equality-deletes",
            "removed-equality-deletes",
        ),
        (
            "total-position-deletes",
            "added-position-deletes",
            "removed-position-deletes",
        ),
    ];
    let get = |m: &HashMap<String, String>, k: &str| {
        m.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0)
    };
    for (total, added, removed) in KEYS {
        let prev = parent
            .map(|s| get(&s.additional_properties, total))
            .unwrap_or(0);
        let v = prev + get(props, added) - get(props, removed);
        props.insert(total.to_string(), v.max(0).to_string());
    }
}

/// Publishes new metadata built on `base`; removes `written` files if the swap is lost.
async fn publish(
    io: &FileIO,
    catalog: &dyn CatalogSwap,
    ident: &TableIdent,
    base: &Loaded,
    builder: iceberg::spec::TableMetadataBuilder,
    written: Vec<String>,
) -> Result<bool> {
    publish_beside(io, catalog, ident, base, builder, written, async { Ok(()) }).await
}

/// [`publish`], writing the metadata file while `beside` writes another file the new
/// metadata names (a snapshot's manifest list: the metadata holds its path, not its
/// content). The swap waits for both, so no reader can see one without the other; on
/// S3 that is one PUT's wait less per commit.
async fn publish_beside(
    io: &FileIO,
    catalog: &dyn CatalogSwap,
    ident: &TableIdent,
    base: &Loaded,
    builder: iceberg::spec::TableMetadataBuilder,
    mut written: Vec<String>,
    beside: impl Future<Output = Result<()>>,
) -> Result<bool> {
    // Never publish metadata of a format refold does not write (a v3 table's snapshots need
    // row lineage fields); the caller's files are removed as for a lost swap.
    if let Err(e) = super::check_format(&base.metadata, ident) {
        super::writer::delete_files_best_effort(io, written.into_iter()).await;
        return Err(e);
    }
    let built = builder
        .build()
        .kind(ErrorKind::Internal, || "build table metadata".into())?;
    let new_md = built.metadata;
    let new_loc = MetadataLocation::from_str(&base.location)
        .kind(ErrorKind::Internal, || {
            format!("parse metadata location {}", base.location)
        })?
        .with_next_version()
        .with_new_metadata(&new_md);
    let write_metadata = async {
        new_md
            .write_to(io, &new_loc)
            .await
            .io(|| format!("write {new_loc}"))
    };
    futures::future::try_join(write_metadata, beside).await?;
    let new_loc = new_loc.to_string();
    written.push(new_loc.clone());
    let requirements = vec![
        TableRequirement::UuidMatch {
            uuid: base.metadata.uuid(),
        },
        TableRequirement::RefSnapshotIdMatch {
            r#ref: MAIN_BRANCH.to_string(),
            snapshot_id: base.metadata.current_snapshot_id(),
        },
    ];
    let won = catalog
        .swap(SwapRequest {
            ident,
            base_location: &base.location,
            new_location: &new_loc,
            new_metadata: &new_md,
            requirements,
            updates: built.changes,
        })
        .await?;
    if won {
        // The next load reads this version: it is what a reader would parse (the test
        // `merge::warm_cache_tests` holds that), so the read is saved.
        super::metadata_cache::metadata().insert(&new_loc, Arc::new(new_md));
    } else {
        super::writer::delete_files_best_effort(io, written.into_iter()).await;
    }
    Ok(won)
}

/// Commits one snapshot on main (row delta: data + position deletes; replace: compaction).
pub async fn commit_snapshot(
    io: &FileIO,
    catalog: &dyn CatalogSwap,
    ident: &TableIdent,
    base: &Loaded,
    change: &SnapshotChange,
    cache: &ManifestCache,
) -> Result<CommitResult> {
    let md = base.metadata.as_ref();
    let schema = md.current_schema().clone();
    let spec = md.default_partition_spec().clone();
    let parent = md.current_snapshot().cloned();
    let seq = md.next_sequence_number();
    let snapshot_id = new_snapshot_id(md);
    let commit_uuid = uuid::Uuid::new_v4();
    let mut written: Vec<String> = vec![];
    let mut n = 0;
    let mut new_writer =
        |content: ManifestContentType, written: &mut Vec<String>| -> Result<ManifestWriter> {
            n += 1;
            let path = format!("{}/metadata/{commit_uuid}-m{n}.avro", md.location());
            written.push(path.clone());
            let b = ManifestWriterBuilder::new(
                io.new_output(&path).io(|| format!("create {path}"))?,
                Some(snapshot_id),
                schema.clone(),
                spec.as_ref().clone(),
            );
            Ok(match content {
                ManifestContentType::Data => b.build_v2_data(),
                ManifestContentType::Deletes => b.build_v2_deletes(),
            })
        };
    // 1) carry forward; the entries of manifests holding files to remove go, with those
    // files marked DELETED, into one rewritten manifest per content type (a compaction
    // touching many past commits' manifests writes two, not one per past commit).
    let mut manifests: Vec<ManifestFile> = vec![];
    let mut removed: Vec<DataFile> = vec![];
    let mut rewritten: Vec<(ManifestContentType, ManifestWriter)> = vec![];
    for mf in files::manifest_list(io, md).await? {
        let no_live = mf.added_files_count == Some(0) && mf.existing_files_count == Some(0);
        if no_live {
            continue;
        }
        let elsewhere = change
            .removed_partition
            .is_some_and(|p| !files::manifest_may_contain(&mf, p));
        if change.removed_paths.is_empty() || elsewhere {
            manifests.push(mf);
            continue;
        }
        let m = cache.get(io, &mf).await?;
        if !m
            .entries()
            .iter()
            .any(|e| e.is_alive() && change.removed_paths.contains(e.file_path()))
        {
            manifests.push(mf);
            continue;
        }
        let at = match rewritten.iter().position(|(c, _)| *c == mf.content) {
            Some(i) => i,
            None => {
                rewritten.push((mf.content, new_writer(mf.content, &mut written)?));
                rewritten.len() - 1
            }
        };
        let w = &mut rewritten[at].1;
        for e in m.entries() {
            if !e.is_alive() {
                continue;
            }
            let data_seq = e
                .sequence_number()
                .ok_or_else(|| Error::new(ErrorKind::Io, "entry without sequence number"))?;
            let file_seq = e.file_sequence_number.or(Some(data_seq));
            if change.removed_paths.contains(e.file_path()) {
                w.add_delete_file(e.data_file().clone(), data_seq, file_seq)
                    .kind(ErrorKind::Internal, || "manifest delete entry".into())?;
                removed.push(e.data_file().clone());
            } else {
                let sid = e.snapshot_id().unwrap_or(mf.added_snapshot_id);
                w.add_existing_file(e.data_file().clone(), sid, data_seq, file_seq)
                    .kind(ErrorKind::Internal, || "manifest existing entry".into())?;
            }
        }
    }
    let mut writes: Vec<_> = rewritten
        .into_iter()
        .map(|(_, w)| w.write_manifest_file())
        .collect();
    if removed.len() != change.removed_paths.len() {
        super::writer::delete_files_best_effort(io, written.into_iter()).await;
        return Ok(CommitResult::Lost(format!(
            "{} of {} files to remove are no longer live",
            change.removed_paths.len() - removed.len(),
            change.removed_paths.len()
        )));
    }

    // 2) new manifests; all of them written at once (each a PUT on S3), listed in order
    let added = [
        (ManifestContentType::Data, &change.added_data),
        (ManifestContentType::Deletes, &change.added_deletes),
    ];
    for (content, files) in added {
        if files.is_empty() {
            continue;
        }
        let mut w = new_writer(content, &mut written)?;
        for f in files {
            w.add_file(f.clone(), seq).kind(ErrorKind::Internal, || {
                format!("manifest entry {content:?}")
            })?;
        }
        writes.push(w.write_manifest_file());
    }
    let new_manifests = futures::future::try_join_all(writes)
        .await
        .io(|| "write manifests".into())?;
    manifests.extend(new_manifests);

    // 3) manifest list, snapshot, metadata
    let list_path = format!(
        "{}/metadata/snap-{snapshot_id}-1-{commit_uuid}.avro",
        md.location()
    );
    written.push(list_path.clone());
    let out = io
        .new_output(&list_path)
        .io(|| format!("create {list_path}"))?;
    let mut lw = iceberg::spec::ManifestListWriter::v2(
        out.writer().await.io(|| format!("create {list_path}"))?,
        snapshot_id,
        parent.as_ref().map(|p| p.snapshot_id()),
        seq,
    );
    lw.add_manifests(manifests.into_iter())
        .kind(ErrorKind::Internal, || "manifest list".into())?;
    let list_written = list_path.clone();
    let write_list = async move { lw.close().await.io(|| format!("write {list_written}")) };

    let mut coll = SnapshotSummaryCollector::default();
    for f in change.added_data.iter().chain(change.added_deletes.iter()) {
        coll.add_file(f, schema.clone(), spec.clone());
    }
    for f in &removed {
        coll.remove_file(f, schema.clone(), spec.clone());
    }
    let mut props = change.summary.clone();
    props.extend(coll.build());
    add_totals(parent.as_ref().map(|p| p.summary()), &mut props);
    let snapshot = Snapshot::builder()
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(parent.as_ref().map(|p| p.snapshot_id()))
        .with_sequence_number(seq)
        .with_timestamp_ms(now_ms().max(md.last_updated_ms()))
        .with_manifest_list(list_path)
        .with_summary(Summary {
            operation: change.operation.clone(),
            additional_properties: props,
        })
        .with_schema_id(schema.schema_id())
        .build();
    let mut builder = md
        .clone()
        .into_builder(Some(base.location.clone()))
        .set_branch_snapshot(snapshot, MAIN_BRANCH)
        .kind(ErrorKind::Internal, || "add snapshot".into())?;
    if !change.properties.is_empty() {
        builder = builder
            .set_properties(change.properties.clone())
            .kind(ErrorKind::Internal, || "set table properties".into())?;
    }
    if publish_beside(io, catalog, ident, base, builder, written, write_list).await? {
        Ok(CommitResult::Committed { snapshot_id })
    } else {
        Ok(CommitResult::Lost("catalog pointer moved".into()))
    }
}

/// The table's references (branches and tags). `TableMetadata` has no public accessor for
/// all of them, so they are read from its (public) serialized form.
pub fn refs(md: &TableMetadata) -> Result<HashMap<String, SnapshotReference>> {
    let v =
        serde_json::to_value(md).kind(ErrorKind::Internal, || "serialize table metadata".into())?;
    match v.get("refs") {
        None | Some(serde_json::Value::Null) => Ok(HashMap::new()),
        Some(r) => {
            serde_json::from_value(r.clone()).kind(ErrorKind::Io, || "table metadata refs".into())
        }
    }
}

/// The checkpoint tags of a table, oldest first: (name, snapshot id, snapshot time ms).
pub fn checkpoint_tags(md: &TableMetadata) -> Result<Vec<(String, i64, i64)>> {
    let mut tags: Vec<(String, i64, i64)> = refs(md)?
        .into_iter()
        .filter(|(name, r)| name.starts_with(CHECKPOINT_TAG_PREFIX) && !r.is_branch())
        .map(|(name, r)| {
            let ts = md
                .snapshot_by_id(r.snapshot_id)
                .map(|s| s.timestamp_ms())
                .unwrap_or(0);
            (name, r.snapshot_id, ts)
        })
        .collect();
    tags.sort_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0)));
    Ok(tags)
}

/// Tags main's current snapshot `name` and drops the oldest checkpoint tags beyond `max_kept`.
pub async fn commit_checkpoint_tag(
    io: &FileIO,
    catalog: &dyn CatalogSwap,
    ident: &TableIdent,
    base: &Loaded,
    name: &str,
    max_kept: usize,
) -> Result<CommitResult> {
    let md = base.metadata.as_ref();
    let Some(cur) = md.current_snapshot() else {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "the table has no snapshot to tag",
        ));
    };
    if let Some(existing) = md.snapshot_for_ref(name) {
        return Ok(CommitResult::Committed {
            snapshot_id: existing.snapshot_id(),
        });
    }
    let mut tags = checkpoint_tags(md)?;
    tags.push((name.to_string(), cur.snapshot_id(), i64::MAX)); // the new one is the newest
    let drop_n = tags.len().saturating_sub(max_kept);
    let mut builder = md
        .clone()
        .into_builder(Some(base.location.clone()))
        .set_ref(
            name,
            SnapshotReference::new(
                cur.snapshot_id(),
                SnapshotRetention::Tag {
                    max_ref_age_ms: None,
                },
            ),
        )
        .kind(ErrorKind::Internal, || "set tag".into())?;
    for (old, _, _) in tags.iter().take(drop_n) {
        builder = builder.remove_ref(old);
    }
    if publish(io, catalog, ident, base, builder, vec![]).await? {
        Ok(CommitResult::Committed {
            snapshot_id: cur.snapshot_id(),
        })
    } else {
        Ok(CommitResult::Lost("catalog pointer moved".into()))
    }
}

/// Removes from the metadata every snapshot that is neither among the newest `keep_last` of
/// main's ancestry nor referenced by a tag or branch. Only metadata: the files only they
/// referenced stay until an orphan-file sweep (not done here). `Committed` with the number
/// Returns the result and how many snapshots were removed.
pub async fn commit_expire_snapshots(
    io: &FileIO,
    catalog: &dyn CatalogSwap,
    ident: &TableIdent,
    base: &Loaded,
    keep_last: usize,
) -> Result<(CommitResult, usize)> {
    let md = base.metadata.as_ref();
    let mut keep: HashSet<i64> = HashSet::new();
    let mut cur = md.current_snapshot().cloned();
    while let Some(s) = cur {
        if keep.len() >= keep_last.max(1) {
            break;
        }
        keep.insert(s.snapshot_id());
        cur = s
            .parent_snapshot_id()
            .and_then(|id| md.snapshot_by_id(id).cloned());
    }
    keep.extend(refs(md)?.values().map(|r| r.snapshot_id));
    let expired: Vec<i64> = md
        .snapshots()
        .map(|s| s.snapshot_id())
        .filter(|id| !keep.contains(id))
        .collect();
    if expired.is_empty() {
        return Ok((
            CommitResult::Committed {
                snapshot_id: md.current_snapshot_id().unwrap_or(0),
            },
            0,
        ));
    }
    let builder = md
        .clone()
        .into_builder(Some(base.location.clone()))
        .remove_snapshots(&expired);
    let n = expired.len();
    if publish(io, catalog, ident, base, builder, vec![]).await? {
        Ok((
            CommitResult::Committed {
                snapshot_id: md.current_snapshot_id().unwrap_or(0),
            },
            n,
        ))
    } else {
        Ok((CommitResult::Lost("catalog pointer moved".into()), 0))
    }
}

/// Sets table properties, nothing else (adopting a table: its owner and refold's properties).
pub async fn commit_properties(
    io: &FileIO,
    catalog: &dyn CatalogSwap,
    ident: &TableIdent,
    base: &Loaded,
    properties: HashMap<String, String>,
) -> Result<CommitResult> {
    let md = base.metadata.as_ref();
    let builder = md
        .clone()
        .into_builder(Some(base.location.clone()))
        .set_properties(properties)
        .kind(ErrorKind::Config, || "set table properties".into())?;
    if publish(io, catalog, ident, base, builder, vec![]).await? {
        Ok(CommitResult::Committed {
            snapshot_id: md.current_snapshot_id().unwrap_or(0),
        })
    } else {
        Ok(CommitResult::Lost("catalog pointer moved".into()))
    }
}
