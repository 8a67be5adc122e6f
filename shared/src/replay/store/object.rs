//! Replays as objects in the warehouse, through iceberg's `FileIO` (the tables' own client
//! stack: local folders, S3, moto), under `<warehouse>/_refold/replays/<pipeline>/<id>/`.
//! FileIO cannot list, so listing goes through opendal as the orphan sweep's does
//! (`table::orphans::list_prefix`): one listing per call.

use std::collections::BTreeMap;

use async_trait::async_trait;
use iceberg::io::FileIO;

use super::{
    MAX_LISTED_REPLAYS, Marker, ReplayStore, StoredReplay, check_no_running_target,
    check_pipeline_name,
};
use crate::error::{Error, ErrorKind, Result};
use crate::replay::id::ReplayId;
use crate::replay::plan::ReplayPlan;
use crate::replay::problem::ReplayNotFound;
use crate::table::orphans::{ListedFile, canonical_path, list_prefix};
use crate::table::{CatalogConfig, StorageConfig};

/// Objects one listing may return (plans and markers of [`MAX_LISTED_REPLAYS`] replays).
const MAX_LISTED_OBJECTS: usize = MAX_LISTED_REPLAYS * 80;
/// Bytes a plan or marker object may have.
const MAX_OBJECT_BYTES: usize = 16 * 1024 * 1024;

pub struct ObjectReplayStore {
    io: FileIO,
    storage: StorageConfig,
    /// `<warehouse>/_refold/replays`, canonical, no trailing `/`.
    root: String,
}

impl ObjectReplayStore {
    /// Replays under `<warehouse>/_refold/replays` (`file:///dir` or `s3://bucket/prefix`).
    pub fn at(warehouse: &str, storage: &StorageConfig) -> Result<Self> {
        let root = canonical_path(warehouse.trim_end_matches('/')).ok_or_else(|| {
            Error::new(
                ErrorKind::Config,
                format!("replay store: warehouse `{warehouse}` is neither a folder nor s3://"),
            )
        })?;
        Ok(Self {
            io: crate::table::catalog::file_io(storage),
            storage: storage.clone(),
            root: format!("{}/_refold/replays", root.trim_end_matches('/')),
        })
    }

    /// In the warehouse of a SQL catalog configuration (an adapter catalog names no
    /// warehouse: use [`ObjectReplayStore::at`]).
    pub fn for_catalog(catalog: &CatalogConfig) -> Result<Self> {
        match catalog {
            CatalogConfig::Sql {
                warehouse, storage, ..
            } => Self::at(warehouse, storage),
            #[allow(unreachable_patterns)]
            _ => Err(Error::new(
                ErrorKind::Config,
                "replay store: this catalog names no warehouse; give one (REFOLD_WAREHOUSE)",
            )),
        }
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    fn dir(&self, pipeline: &str, id: &ReplayId) -> String {
        format!("{}/{pipeline}/{id}", self.root)
    }

    async fn write_json(&self, path: &str, value: &impl serde::Serialize) -> Result<()> {
        let body = serde_json::to_vec_pretty(value).map_err(|e| {
            Error::new(ErrorKind::Internal, format!("encode {path}")).with_source(e)
        })?;
        let io_err =
            |e: iceberg::Error| Error::new(ErrorKind::Io, format!("write {path}")).with_source(e);
        self.io
            .new_output(path)
            .map_err(io_err)?
            .write(bytes::Bytes::from(body))
            .await
            .map_err(io_err)
    }

    async fn read_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let io_err =
            |e: iceberg::Error| Error::new(ErrorKind::Io, format!("read {path}")).with_source(e);
        let bytes = self
            .io
            .new_input(path)
            .map_err(io_err)?
            .read()
            .await
            .map_err(io_err)?;
        if bytes.len() > MAX_OBJECT_BYTES {
            return Err(Error::new(
                ErrorKind::Io,
                format!("{path}: {} bytes exceed {MAX_OBJECT_BYTES}", bytes.len()),
            ));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::new(ErrorKind::Io, format!("decode {path}")).with_source(e))
    }

    async fn list_files(&self, pipeline: &str) -> Result<Vec<ListedFile>> {
        let mut out = Vec::new();
        let prefix = format!("{}/{pipeline}/", self.root);
        list_prefix(&prefix, &self.storage, MAX_LISTED_OBJECTS, &mut out).await?;
        Ok(out)
    }

    /// The replay's plan and the markers among `files` (its folder's objects).
    async fn load(&self, dir: &str, files: &[&str]) -> Result<StoredReplay> {
        let plan: ReplayPlan = self.read_json(&format!("{dir}/plan.json")).await?;
        let mut markers = Vec::new();
        for f in files {
            let name = f.rsplit('/').next().unwrap_or(f);
            if name != "plan.json" && name.ends_with(".json") {
                markers.push(self.read_json::<Marker>(f).await?);
            }
        }
        Ok(StoredReplay { plan, markers })
    }

    fn plan_path(&self, plan: &ReplayPlan) -> String {
        format!("{}/plan.json", self.dir(&plan.pipeline, &plan.replay_id))
    }

    /// A conflict when another running replay of the pipeline has `plan`'s target.
    async fn check_target(&self, plan: &ReplayPlan) -> Result<()> {
        let others: Vec<StoredReplay> = self
            .list(&plan.pipeline)
            .await?
            .into_iter()
            .filter(|r| r.plan.replay_id != plan.replay_id)
            .collect();
        check_no_running_target(&others, plan)
    }

    async fn write_plan(&self, plan: &ReplayPlan) -> Result<()> {
        self.write_json(&self.plan_path(plan), plan).await
    }

    /// The check again, after the write: a create racing this one may have passed its
    /// check too. Whichever sees the other withdraws (deletes its plan). Listing reads its
    /// writes (S3, local folders), so the later writer's check always sees the earlier
    /// plan: at most one goes on; rarely both withdraw (both answer 409). A check that
    /// cannot run withdraws too.
    async fn withdraw_if_contested(&self, plan: &ReplayPlan) -> Result<()> {
        let Err(e) = self.check_target(plan).await else {
            return Ok(());
        };
        let path = self.plan_path(plan);
        if let Err(d) = self.io.delete(&path).await {
            return Err(e.with_context(format!("and withdrawing {path} failed: {d}")));
        }
        Err(e)
    }

    async fn plan_exists(&self, dir: &str) -> Result<bool> {
        self.io
            .exists(format!("{dir}/plan.json"))
            .await
            .map_err(|e| Error::new(ErrorKind::Io, format!("stat {dir}/plan.json")).with_source(e))
    }

    /// Files grouped by replay folder (ids that parse), oldest id first.
    fn by_replay(&self, pipeline: &str, files: &[ListedFile]) -> BTreeMap<ReplayId, Vec<String>> {
        let base = format!("{}/{pipeline}/", self.root);
        let mut m: BTreeMap<ReplayId, Vec<String>> = BTreeMap::new();
        for f in files {
            let Some(rest) = f.path.strip_prefix(&base) else {
                continue;
            };
            let Some((id, _)) = rest.split_once('/') else {
                continue;
            };
            if let Ok(id) = ReplayId::parse(id) {
                m.entry(id).or_default().push(f.path.clone());
            }
        }
        m
    }
}

#[async_trait]
impl ReplayStore for ObjectReplayStore {
    async fn create(&self, plan: &ReplayPlan) -> Result<()> {
        check_pipeline_name(&plan.pipeline)?;
        self.check_target(plan).await?;
        self.write_plan(plan).await?;
        self.withdraw_if_contested(plan).await
    }

    async fn get(&self, pipeline: &str, id: &ReplayId) -> Result<StoredReplay> {
        check_pipeline_name(pipeline)?;
        let files = self.list_files(pipeline).await?;
        let groups = self.by_replay(pipeline, &files);
        let Some(paths) = groups
            .get(id)
            .filter(|v| v.iter().any(|p| p.ends_with("/plan.json")))
        else {
            return Err(ReplayNotFound::error(format!(
                "replay {id} of pipeline {pipeline}"
            )));
        };
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        self.load(&self.dir(pipeline, id), &refs).await
    }

    async fn list(&self, pipeline: &str) -> Result<Vec<StoredReplay>> {
        check_pipeline_name(pipeline)?;
        let files = self.list_files(pipeline).await?;
        let mut out = Vec::new();
        for (id, paths) in self.by_replay(pipeline, &files) {
            if out.len() >= MAX_LISTED_REPLAYS {
                break;
            }
            if !paths.iter().any(|p| p.ends_with("/plan.json")) {
                continue;
            }
            let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
            let dir = self.dir(pipeline, &id);
            match self.load(&dir, &refs).await {
                Ok(r) => out.push(r),
                // Withdrawn by its create since the listing (see `withdraw_if_contested`).
                Err(_) if !self.plan_exists(&dir).await? => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn mark(&self, pipeline: &str, id: &ReplayId, marker: Marker) -> Result<()> {
        check_pipeline_name(pipeline)?;
        let dir = self.dir(pipeline, id);
        if !self.plan_exists(&dir).await? {
            return Err(ReplayNotFound::error(format!(
                "replay {id} of pipeline {pipeline}"
            )));
        }
        self.write_json(&format!("{dir}/{}", marker.object_name()), &marker)
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::replay::plan::StartState;

    fn plan(id_minute: u32, target: &str) -> ReplayPlan {
        let at = chrono::DateTime::parse_from_rfc3339(&format!("2026-12-02T10:{id_minute:02}:00Z"))
            .unwrap()
            .with_timezone(&chrono::Utc);
        ReplayPlan {
            replay_id: ReplayId::new(at),
            pipeline: "p".into(),
            topic: "t".into(),
            source_table: "ns.live".into(),
            live_consumer_group: "live".into(),
            target_table: target.into(),
            target_consumer_group: "g".into(),
            request: serde_json::json!({}),
            to_timestamp_ms: None,
            start: StartState::Empty,
            ranges: Vec::new(),
            shards: vec![crate::replay::Shard {
                index: 0,
                ranges: Vec::new(),
            }],
            created_at_ms: at.timestamp_millis(),
        }
    }

    fn store(dir: &std::path::Path) -> ObjectReplayStore {
        let w = format!("file://{}", dir.display());
        ObjectReplayStore::at(&w, &StorageConfig::default()).unwrap()
    }

    fn is_conflict(r: &Result<()>) -> bool {
        r.as_ref()
            .is_err_and(|e| e.to_string().contains("still running into it"))
    }

    /// Two creates for one target, forced through both interleavings that pass both
    /// first checks: exactly one plan is stored (the check alone stored both).
    #[tokio::test]
    async fn racing_creates_for_one_target_store_one_plan() {
        for later_recheck_first in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let s = store(dir.path());
            let (a, b) = (plan(1, "ns.t"), plan(2, "ns.t"));
            s.check_target(&a).await.unwrap();
            s.check_target(&b).await.unwrap();
            s.write_plan(&a).await.unwrap();
            let (ra, rb) = if later_recheck_first {
                s.write_plan(&b).await.unwrap();
                let rb = s.withdraw_if_contested(&b).await;
                (s.withdraw_if_contested(&a).await, rb)
            } else {
                let ra = s.withdraw_if_contested(&a).await;
                s.write_plan(&b).await.unwrap();
                (ra, s.withdraw_if_contested(&b).await)
            };
            let stored = s.list("p").await.unwrap();
            let went_on = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
            assert_eq!(stored.len(), went_on, "{ra:?} {rb:?}");
            assert!(went_on <= 1, "both went on: {ra:?} {rb:?}");
            assert!([&ra, &rb].iter().all(|r| r.is_ok() || is_conflict(r)));
            if !later_recheck_first {
                assert!(ra.is_ok() && is_conflict(&rb), "{ra:?} {rb:?}");
            }
        }
    }

    #[tokio::test]
    async fn a_create_after_a_running_one_is_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.create(&plan(1, "ns.t")).await.unwrap();
        assert!(is_conflict(&s.create(&plan(2, "ns.t")).await));
        s.create(&plan(3, "ns.other")).await.unwrap();
        assert_eq!(s.list("p").await.unwrap().len(), 2);
    }
}
