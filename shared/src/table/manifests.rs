//! Merging small manifests, so that planning and commit cost stay flat as commits
//! accumulate: every fold-batch commit adds a data and a delete manifest for its partition,
//! and a merge's lookup reads its partition's manifests (a cold Lambda reads them all).
//!
//! The plan ([`plan_manifest_merge`], pure): manifests with no live file are dropped; the
//! others are grouped by (partition spec, content, source partition: every refold commit
//! writes manifests of one partition, others' span several and form their own group); a group
//! with at least `min_count` manifests smaller than `target_bytes` has those packed, in list
//! order, into as few manifests as fit `target_bytes` each. The commit is
//! `commit::rewrite_manifests` (same files, same sequence numbers, operation `replace`).
//!
//! Cost: the current snapshot's manifests (cached by path) and one write per merged group.

use std::collections::{BTreeMap, HashMap, HashSet};

use iceberg::spec::{
    Datum, ManifestContentType, ManifestFile, ManifestWriterBuilder, PrimitiveLiteral,
    PrimitiveType,
};
use serde::Serialize;

use super::commit::rewrite_manifests::{ManifestRewrite, commit_rewrite_manifests};
use super::commit::{CommitResult, new_snapshot_id};
use super::hooks::HookPoint;
use super::merge::WRITER;
use super::retry::{self, Attempt};
use super::{Loaded, ResultExt, StateTable, files};
use crate::error::{Error, ErrorKind, Result};

/// One manifest of the current snapshot, as the plan sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestInfo {
    pub path: String,
    pub deletes: bool,
    pub spec_id: i32,
    /// The one source partition its files belong to; `None` when it spans several.
    pub partition: Option<i32>,
    pub length_bytes: u64,
    /// Added plus existing files; `None` when the list does not say.
    pub live_files: Option<u64>,
}

/// Which manifests become which: each group (indices into the planned slice) is written as
/// one new manifest; `dropped` ones hold no live file and simply go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestMergePlan {
    pub groups: Vec<Vec<usize>>,
    pub dropped: Vec<usize>,
}

impl ManifestMergePlan {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.dropped.is_empty()
    }
}

/// What a manifest merge did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ManifestMergeOutcome {
    /// The `replace` snapshot; `None` when nothing needed merging.
    pub snapshot_id: Option<i64>,
    pub manifests_before: usize,
    pub manifests_replaced: usize,
    pub manifests_created: usize,
    pub manifests_dropped: usize,
    pub entries: usize,
    pub attempts: u32,
}

/// See the module docs.
pub fn plan_manifest_merge(
    ms: &[ManifestInfo],
    min_count: usize,
    target_bytes: u64,
) -> ManifestMergePlan {
    let mut plan = ManifestMergePlan::default();
    let mut groups: BTreeMap<(i32, bool, Option<i32>), Vec<usize>> = BTreeMap::new();
    for (i, m) in ms.iter().enumerate() {
        if m.live_files == Some(0) {
            plan.dropped.push(i);
        } else if m.length_bytes < target_bytes {
            groups
                .entry((m.spec_id, m.deletes, m.partition))
                .or_default()
                .push(i);
        }
    }
    for small in groups.into_values() {
        if small.len() < min_count.max(2) {
            continue;
        }
        let mut bin: Vec<usize> = vec![];
        let mut bin_bytes = 0u64;
        for i in small {
            let len = ms[i].length_bytes;
            if !bin.is_empty() && bin_bytes + len > target_bytes {
                if bin.len() > 1 {
                    plan.groups.push(std::mem::take(&mut bin));
                }
                bin.clear();
                bin_bytes = 0;
            }
            bin.push(i);
            bin_bytes += len;
        }
        if bin.len() > 1 {
            plan.groups.push(bin);
        }
    }
    plan
}

fn int_bound(b: Option<&[u8]>) -> Option<i32> {
    match Datum::try_from_bytes(b?, PrimitiveType::Int)
        .ok()?
        .literal()
    {
        PrimitiveLiteral::Int(v) => Some(*v),
        _ => None,
    }
}

/// The plan's view of a manifest list entry.
pub fn manifest_info(mf: &ManifestFile) -> ManifestInfo {
    let partition = mf
        .partitions
        .as_ref()
        .and_then(|v| v.first())
        .and_then(|s| {
            let lo = int_bound(s.lower_bound.as_ref().map(|b| b.as_slice()))?;
            let hi = int_bound(s.upper_bound.as_ref().map(|b| b.as_slice()))?;
            (lo == hi).then_some(lo)
        });
    let live = match (mf.added_files_count, mf.existing_files_count) {
        (Some(a), Some(e)) => Some(u64::from(a) + u64::from(e)),
        _ => None,
    };
    ManifestInfo {
        path: mf.manifest_path.clone(),
        deletes: mf.content == ManifestContentType::Deletes,
        spec_id: mf.partition_spec_id,
        partition,
        length_bytes: mf.manifest_length.max(0) as u64,
        live_files: live,
    }
}

impl StateTable {
    /// Merges the current snapshot's small manifests (see the module docs): one `replace`
    /// snapshot, or nothing when no group reaches `min_count`.
    pub async fn merge_manifests(
        &self,
        min_count: usize,
        target_bytes: u64,
    ) -> Result<ManifestMergeOutcome> {
        let ctx = || format!("merge manifests of {}", self.cfg.table);
        let mut plan: Option<(ManifestRewrite, ManifestMergeOutcome)> = None;
        let res = retry::with_commit_retry!(self, |base, n| self
            .merge_manifests_attempt(&base, n, min_count, target_bytes, &mut plan)
            .await);
        if res.is_err()
            && let Some((rw, _)) = plan.take()
        {
            let paths = rw.created.iter().map(|m| m.manifest_path.clone());
            super::writer::delete_files_best_effort(&self.file_io, paths).await;
        }
        res.map_err(|e| e.with_context(ctx()))
    }

    async fn merge_manifests_attempt(
        &self,
        base: &Loaded,
        attempt: u32,
        min_count: usize,
        target_bytes: u64,
        plan: &mut Option<(ManifestRewrite, ManifestMergeOutcome)>,
    ) -> Result<Attempt<ManifestMergeOutcome>> {
        self.check_base(base)?;
        let current = files::manifest_list(&self.file_io, &base.metadata).await?;
        let listed: HashSet<&str> = current.iter().map(|m| m.manifest_path.as_str()).collect();
        let still_fits = |rw: &ManifestRewrite| {
            rw.replaced.iter().all(|p| listed.contains(p.as_str()))
                && base.metadata.snapshot_by_id(rw.snapshot_id).is_none()
        };
        if let Some((rw, _)) = plan.as_ref()
            && !still_fits(rw)
        {
            let paths = rw.created.iter().map(|m| m.manifest_path.clone());
            super::writer::delete_files_best_effort(&self.file_io, paths).await;
            *plan = None;
        }
        if plan.is_none() {
            match self
                .write_merged(base, &current, min_count, target_bytes)
                .await?
            {
                Some(p) => *plan = Some(p),
                None => {
                    return Ok(Attempt::Done(ManifestMergeOutcome {
                        manifests_before: current.len(),
                        attempts: attempt,
                        ..ManifestMergeOutcome::default()
                    }));
                }
            }
        }
        let Some((rw, outcome)) = plan.as_mut() else {
            return Err(Error::new(
                ErrorKind::Internal,
                "manifest merge plan missing",
            ));
        };
        rw.summary = self.carried_offsets(base);
        rw.summary.insert("refold.writer".into(), WRITER.into());
        self.hooks
            .run(HookPoint::ManifestsBeforeCommit, attempt)
            .await;
        let res =
            commit_rewrite_manifests(&self.file_io, self.catalog.as_ref(), &self.ident, base, rw)
                .await?;
        Ok(match res {
            CommitResult::Committed { snapshot_id } => {
                let mut done = outcome.clone();
                done.snapshot_id = Some(snapshot_id);
                done.attempts = attempt;
                *plan = None;
                Attempt::Done(done)
            }
            CommitResult::Lost(why) => Attempt::Lost(why),
        })
    }

    /// Plans on `current` and writes the merged manifests; `None` when nothing to merge.
    async fn write_merged(
        &self,
        base: &Loaded,
        current: &[ManifestFile],
        min_count: usize,
        target_bytes: u64,
    ) -> Result<Option<(ManifestRewrite, ManifestMergeOutcome)>> {
        let infos: Vec<ManifestInfo> = current.iter().map(manifest_info).collect();
        let p = plan_manifest_merge(&infos, min_count, target_bytes);
        if p.is_empty() {
            return Ok(None);
        }
        let snapshot_id = new_snapshot_id(&base.metadata);
        let mut rw = ManifestRewrite {
            snapshot_id,
            replaced: HashSet::new(),
            created: vec![],
            entries: 0,
            summary: HashMap::new(),
        };
        for i in &p.dropped {
            rw.replaced.insert(current[*i].manifest_path.clone());
        }
        for group in &p.groups {
            let inputs: Vec<&ManifestFile> = group.iter().map(|i| &current[*i]).collect();
            match self
                .write_one_merged(base, snapshot_id, &inputs, &mut rw)
                .await
            {
                Ok(()) => {}
                Err(e) => {
                    let paths = rw.created.iter().map(|m| m.manifest_path.clone());
                    super::writer::delete_files_best_effort(&self.file_io, paths).await;
                    return Err(e);
                }
            }
        }
        let outcome = ManifestMergeOutcome {
            snapshot_id: None,
            manifests_before: current.len(),
            manifests_replaced: rw.replaced.len(),
            manifests_created: rw.created.len(),
            manifests_dropped: p.dropped.len(),
            entries: rw.entries,
            attempts: 0,
        };
        Ok(Some((rw, outcome)))
    }

    /// Writes the live entries of `inputs` (one spec, one content) as one manifest.
    async fn write_one_merged(
        &self,
        base: &Loaded,
        snapshot_id: i64,
        inputs: &[&ManifestFile],
        rw: &mut ManifestRewrite,
    ) -> Result<()> {
        let md = &base.metadata;
        let first = inputs
            .first()
            .ok_or_else(|| Error::new(ErrorKind::Internal, "empty manifest group"))?;
        let spec = md
            .partition_spec_by_id(first.partition_spec_id)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Io,
                    format!(
                        "manifest {} has unknown spec id {}",
                        first.manifest_path, first.partition_spec_id
                    ),
                )
            })?;
        let path = format!(
            "{}/metadata/{}-m0.avro",
            md.location(),
            uuid::Uuid::new_v4()
        );
        let b = ManifestWriterBuilder::new(
            self.file_io
                .new_output(&path)
                .io(|| format!("create {path}"))?,
            Some(snapshot_id),
            md.current_schema().clone(),
            spec.as_ref().clone(),
        );
        let mut w = match first.content {
            ManifestContentType::Data => b.build_v2_data(),
            ManifestContentType::Deletes => b.build_v2_deletes(),
        };
        for mf in inputs {
            let m = self.manifests.get(&self.file_io, mf).await?;
            for e in m.entries().iter().filter(|e| e.is_alive()) {
                let data_seq = e.sequence_number().ok_or_else(|| {
                    Error::new(
                        ErrorKind::Io,
                        format!("entry {} without sequence number", e.file_path()),
                    )
                })?;
                let sid = e.snapshot_id().unwrap_or(mf.added_snapshot_id);
                w.add_existing_file(
                    e.data_file().clone(),
                    sid,
                    data_seq,
                    e.file_sequence_number.or(Some(data_seq)),
                )
                .kind(ErrorKind::Internal, || "merged manifest entry".into())?;
                rw.entries += 1;
            }
            rw.replaced.insert(mf.manifest_path.clone());
        }
        let written = w
            .write_manifest_file()
            .await
            .io(|| format!("write {path}"))?;
        rw.created.push(written);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(path: &str, deletes: bool, partition: Option<i32>, len: u64, live: u64) -> ManifestInfo {
        ManifestInfo {
            path: path.into(),
            deletes,
            spec_id: 0,
            partition,
            length_bytes: len,
            live_files: Some(live),
        }
    }

    #[test]
    fn groups_by_kind_and_partition_packs_to_target_and_drops_dead() {
        let ms = vec![
            m("d0a", false, Some(0), 10, 1),  // 0
            m("d0b", false, Some(0), 10, 1),  // 1
            m("x0a", true, Some(0), 10, 1),   // 2: deletes of p0, alone in its group
            m("d1a", false, Some(1), 10, 1),  // 3
            m("d0c", false, Some(0), 10, 1),  // 4
            m("dead", true, Some(0), 10, 0),  // 5: no live file
            m("big", false, Some(0), 100, 9), // 6: not small
            m("d0d", false, Some(0), 10, 1),  // 7
            m("d0e", false, Some(0), 10, 1),  // 8
            m("mix", false, None, 10, 1),     // 9
        ];
        // min 3, target 25: p0 data {0,1,4,7,8} packs as [0,1] [4,7] [8 alone: stays].
        let p = plan_manifest_merge(&ms, 3, 25);
        assert_eq!(p.groups, vec![vec![0, 1], vec![4, 7]]);
        assert_eq!(p.dropped, vec![5]);
        // min 7, target 1,000 ("big" is small now: p0 data has 6): no group is big
        // enough; the dead one still goes.
        let p = plan_manifest_merge(&ms, 7, 1_000);
        assert!(p.groups.is_empty());
        assert_eq!(p.dropped, vec![5]);
        // min 2, large target: each (kind, partition) group of >= 2 becomes one.
        let p = plan_manifest_merge(&ms, 2, 1_000);
        assert_eq!(p.groups, vec![vec![0, 1, 4, 6, 7, 8]]);
        assert!(plan_manifest_merge(&[], 2, 10).is_empty());
    }
}
