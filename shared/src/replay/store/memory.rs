//! Replays in memory (tests; a CLI run that needs no durability).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Marker, ReplayStore, StoredReplay, check_no_running_target, check_pipeline_name};
use crate::error::{Error, ErrorKind, Result};
use crate::replay::id::ReplayId;
use crate::replay::plan::ReplayPlan;
use crate::replay::problem::ReplayNotFound;

#[derive(Default)]
pub struct MemoryReplayStore {
    replays: Mutex<BTreeMap<(String, ReplayId), StoredReplay>>,
}

impl MemoryReplayStore {
    fn lock(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, BTreeMap<(String, ReplayId), StoredReplay>>> {
        self.replays
            .lock()
            .map_err(|_| Error::new(ErrorKind::Internal, "replay store lock poisoned"))
    }
}

#[async_trait]
impl ReplayStore for MemoryReplayStore {
    async fn create(&self, plan: &ReplayPlan) -> Result<()> {
        check_pipeline_name(&plan.pipeline)?;
        let mut m = self.lock()?;
        let existing: Vec<StoredReplay> = m
            .iter()
            .filter(|((p, _), _)| *p == plan.pipeline)
            .map(|(_, r)| r.clone())
            .collect();
        check_no_running_target(&existing, plan)?;
        m.insert(
            (plan.pipeline.clone(), plan.replay_id.clone()),
            StoredReplay {
                plan: plan.clone(),
                markers: Vec::new(),
            },
        );
        Ok(())
    }

    async fn get(&self, pipeline: &str, id: &ReplayId) -> Result<StoredReplay> {
        self.lock()?
            .get(&(pipeline.to_owned(), id.clone()))
            .cloned()
            .ok_or_else(|| ReplayNotFound::error(format!("replay {id} of pipeline {pipeline}")))
    }

    async fn list(&self, pipeline: &str) -> Result<Vec<StoredReplay>> {
        Ok(self
            .lock()?
            .iter()
            .filter(|((p, _), _)| p == pipeline)
            .map(|(_, r)| r.clone())
            .take(super::MAX_LISTED_REPLAYS)
            .collect())
    }

    async fn mark(&self, pipeline: &str, id: &ReplayId, marker: Marker) -> Result<()> {
        let mut m = self.lock()?;
        let r = m
            .get_mut(&(pipeline.to_owned(), id.clone()))
            .ok_or_else(|| ReplayNotFound::error(format!("replay {id} of pipeline {pipeline}")))?;
        let name = marker.object_name();
        r.markers.retain(|m| m.object_name() != name);
        r.markers.push(marker);
        Ok(())
    }
}
