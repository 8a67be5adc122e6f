//! Which (topic, consumer group) owns a state table: table property `refold.owner` =
//! `<topic>/<group>`, recorded when refold creates the table, or adopted with a
//! properties-only commit for a table that has none. A second pipeline pointed at the same
//! table would fold its records over the first one's rows and offsets: `open_or_create`
//! refuses it, naming both owners.

use std::collections::HashMap;

use super::commit::{self, CommitResult};
use super::retry::{self, Attempt};
use super::schema::TableLayout;
use super::{Loaded, StateTable, TableConfig};
use crate::error::{Error, ErrorKind, Result};

/// The table property naming the owning `<topic>/<group>`.
pub const OWNER_PROPERTY: &str = "refold.owner";

/// `<topic>/<group>` (a topic has no `/`, so this splits back unambiguously).
pub(crate) fn owner_of(cfg: &TableConfig) -> String {
    format!("{}/{}", cfg.topic, cfg.consumer_group)
}

/// What refold records on a table it creates: the layout's properties, the configured
/// extra ones, the owner (refold's own keys win).
pub(crate) fn creation_properties(
    cfg: &TableConfig,
    layout: &TableLayout,
) -> HashMap<String, String> {
    let mut props = layout.properties.clone();
    props.extend(cfg.properties.iter().map(|(k, v)| (k.clone(), v.clone())));
    props.insert(OWNER_PROPERTY.to_string(), owner_of(cfg));
    props
}

fn check_owner(cfg: &TableConfig, owner: &str) -> Result<()> {
    let me = owner_of(cfg);
    if owner != me {
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "table {} is owned by `{owner}` (topic/consumer group, table property \
                 {OWNER_PROPERTY}); this pipeline is `{me}`: one table per topic and consumer \
                 group — point the sink at another table",
                cfg.table
            ),
        ));
    }
    Ok(())
}

impl StateTable {
    /// Records this handle's owner (and configured properties) unless another handle adopted
    /// the table concurrently (then that one's owner must be this one).
    async fn adopt_attempt(&self, base: &Loaded) -> Result<Attempt<()>> {
        if let Some(owner) = base.metadata.properties().get(OWNER_PROPERTY) {
            check_owner(&self.cfg, owner)?;
            return Ok(Attempt::Done(()));
        }
        let mut props: HashMap<String, String> = self
            .cfg
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        props.insert(OWNER_PROPERTY.to_string(), owner_of(&self.cfg));
        let res = commit::commit_properties(
            &self.file_io,
            self.catalog.as_ref(),
            &self.ident,
            base,
            props,
        )
        .await?;
        Ok(match res {
            CommitResult::Committed { .. } => Attempt::Done(()),
            CommitResult::Lost(why) => Attempt::Lost(why),
        })
    }

    /// Checks the owner of a just-opened table, adopting a table that has none.
    pub(crate) async fn claim(&self, opened: &Loaded) -> Result<()> {
        if let Some(owner) = opened.metadata.properties().get(OWNER_PROPERTY) {
            return check_owner(&self.cfg, owner);
        }
        retry::with_commit_retry!(self, |base, _| self.adopt_attempt(&base).await)
            .map_err(|e| e.with_context("adopt the table (record its owner)"))
    }
}
