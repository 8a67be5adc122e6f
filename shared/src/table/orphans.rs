//! Files under the table's location that no kept snapshot references: listing them, the set
//! of referenced files, and deleting the ones the maintenance policy picks
//! (`compactor::policy::orphans`: unreferenced and older than the grace period).
//!
//! iceberg's `FileIO` cannot list, so listing goes through `opendal` directly, the same
//! crate, version and services `iceberg-storage-opendal` runs on (one S3 stack); deleting
//! goes through the table's `FileIO`. Paths are compared in a canonical form
//! ([`canonical_path`]): `file:/x`, `file:///x` and `/x` are one file; `s3a://` and `s3n://`
//! are `s3://`. A referenced path refold cannot put in that form makes the whole step refuse
//! (it could not tell whether a listed file is that one).
//!
//! Safe against commits in flight, with the caller's order: list first (each file with its
//! last-modified time), then load the references from the newest metadata. A file written
//! after the listing is not listed; one listed but referenced by a commit that lands after the
//! references were read is either carried forward from the current snapshot (referenced) or
//! new (younger than the grace period, which is at least an hour: longer than any writer
//! holds an uncommitted file).
//!
//! Cost: one recursive listing of `<location>/data/` and `<location>/metadata/`, the manifest
//! list of every kept snapshot and every manifest they name (each read once).

use std::collections::{BTreeSet, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::TryStreamExt;
use iceberg::spec::{ManifestList, TableMetadata};
use opendal::Operator;
use serde::Serialize;

use super::{ResultExt, StateTable, StorageConfig};
use crate::error::{Error, ErrorKind, Result};

/// A file found under the table's location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// Canonical (see [`canonical_path`]).
    pub path: String,
    pub size_bytes: u64,
    /// `None` when the store did not say: such a file is never deleted.
    pub last_modified_ms: Option<i64>,
}

/// Every file the table's metadata references, canonical.
#[derive(Debug, Clone, Default)]
pub struct References {
    pub paths: HashSet<String>,
    /// Referenced paths with no canonical form (an unknown scheme): orphan removal refuses.
    pub unknown: Vec<String>,
    pub snapshots: usize,
    pub manifests: usize,
}

/// What deleting orphans did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OrphansDeleted {
    pub deleted: usize,
    pub failed: usize,
}

/// `file:///abs/path` for local paths (`/abs`, `file:/abs`, `file:///abs`, `file://localhost/abs`;
/// repeated `/` collapsed), `s3://bucket/key` for `s3`, `s3a`, `s3n`; `None` otherwise.
pub fn canonical_path(p: &str) -> Option<String> {
    if let Some((scheme, rest)) = p.split_once("://") {
        return match scheme.to_ascii_lowercase().as_str() {
            "s3" | "s3a" | "s3n" => {
                let (bucket, key) = rest.split_once('/')?;
                (!bucket.is_empty() && !key.is_empty()).then(|| format!("s3://{bucket}/{key}"))
            }
            "file" => {
                let path = rest.strip_prefix("localhost").unwrap_or(rest);
                path.starts_with('/').then(|| local(path))
            }
            _ => None,
        };
    }
    if let Some(path) = p.strip_prefix("file:") {
        return path.starts_with('/').then(|| local(path));
    }
    p.starts_with('/').then(|| local(p))
}

fn local(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 7);
    out.push_str("file://");
    let mut prev_slash = false;
    for c in path.chars() {
        if c == '/' && prev_slash {
            continue;
        }
        prev_slash = c == '/';
        out.push(c);
    }
    out
}

/// The folders the table writes its files to (`write.data.path` / `write.metadata.path` when
/// set, else `<location>/data/` and `<location>/metadata/`), canonical, ending in `/`.
pub fn table_prefixes(md: &TableMetadata) -> Result<Vec<String>> {
    let loc = md.location().trim_end_matches('/');
    let props = md.properties();
    let data = props
        .get("write.data.path")
        .cloned()
        .unwrap_or_else(|| format!("{loc}/data"));
    let meta = props
        .get("write.metadata.path")
        .cloned()
        .unwrap_or_else(|| format!("{loc}/metadata"));
    [data, meta]
        .iter()
        .map(|p| {
            let c = canonical_path(p.trim_end_matches('/')).ok_or_else(|| {
                Error::new(
                    ErrorKind::Config,
                    format!("table file location `{p}` is neither local nor s3://"),
                )
            })?;
            Ok(format!("{c}/"))
        })
        .collect()
}

/// An operator rooted at `/` (local) or at the bucket (S3), and the prefix's path in it.
fn operator_for(prefix: &str, storage: &StorageConfig) -> Result<(Operator, String)> {
    if let Some(path) = prefix.strip_prefix("file://") {
        let mut cfg = opendal::services::FsConfig::default();
        cfg.root = Some("/".to_string());
        let op = Operator::from_config(cfg)
            .io(|| "local file lister".into())?
            .finish();
        return Ok((op, path.trim_start_matches('/').to_string()));
    }
    let rest = prefix
        .strip_prefix("s3://")
        .ok_or_else(|| Error::new(ErrorKind::Internal, format!("cannot list {prefix}")))?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    let mut cfg = opendal::services::S3Config::default();
    cfg.bucket = bucket.to_string();
    cfg.endpoint = storage.s3_endpoint.clone();
    cfg.region = storage.s3_region.clone();
    cfg.access_key_id = storage.s3_access_key_id.clone();
    cfg.secret_access_key = storage.s3_secret_access_key.clone();
    cfg.session_token = storage.s3_session_token.clone();
    // As iceberg-storage-opendal: virtual-host style unless path style is asked for.
    cfg.enable_virtual_host_style = !storage.s3_path_style;
    let op = Operator::from_config(cfg)
        .io(|| format!("S3 lister for bucket {bucket}"))?
        .finish();
    Ok((op, key.to_string()))
}

fn millis(t: opendal::raw::Timestamp) -> Option<i64> {
    let st: SystemTime = t.into();
    st.duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as i64)
}

/// Every file under `prefix` (canonical, ending in `/`), at most `max_files`.
pub(crate) async fn list_prefix(
    prefix: &str,
    storage: &StorageConfig,
    max_files: usize,
    out: &mut Vec<ListedFile>,
) -> Result<()> {
    let (op, path) = operator_for(prefix, storage)?;
    let root = &prefix[..prefix.len() - path.len()];
    let mut lister = match op.lister_with(&path).recursive(true).await {
        Ok(l) => l,
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::new(ErrorKind::Io, format!("list {prefix}")).with_source(e)),
    };
    while let Some(entry) = lister.try_next().await.io(|| format!("list {prefix}"))? {
        if !entry.metadata().is_file() {
            continue;
        }
        if out.len() >= max_files {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("more than max_listed_files {max_files} files under the table's folders"),
            ));
        }
        let mut meta = entry.metadata().clone();
        if meta.last_modified().is_none() {
            // Local listings carry no times: ask for each.
            meta = op
                .stat(entry.path())
                .await
                .io(|| format!("stat {}", entry.path()))?;
        }
        out.push(ListedFile {
            path: format!("{root}{}", entry.path()),
            size_bytes: meta.content_length(),
            last_modified_ms: meta.last_modified().and_then(millis),
        });
    }
    Ok(())
}

impl StateTable {
    /// Every file under the table's data and metadata folders, with size and age.
    pub async fn list_files(&self, max_files: usize) -> Result<Vec<ListedFile>> {
        let l = self.load().await?;
        let storage = self.cfg.catalog.storage();
        let mut out = Vec::new();
        for prefix in table_prefixes(&l.metadata)? {
            list_prefix(&prefix, storage, max_files, &mut out).await?;
        }
        Ok(out)
    }

    /// Every file the newest metadata references: itself, the metadata log, statistics
    /// files, and per kept snapshot its manifest list, manifests and their live files.
    pub async fn referenced_files(&self) -> Result<References> {
        let l = self.load().await?;
        let md = &l.metadata;
        let mut refs = References::default();
        let add = |p: &str, refs: &mut References| match canonical_path(p) {
            Some(c) => {
                refs.paths.insert(c);
            }
            None => refs.unknown.push(p.to_string()),
        };
        add(&l.location, &mut refs);
        for m in md.metadata_log() {
            add(&m.metadata_file, &mut refs);
        }
        for s in md.statistics_iter() {
            add(&s.statistics_path, &mut refs);
        }
        for s in md.partition_statistics_iter() {
            add(&s.statistics_path, &mut refs);
        }
        let mut manifests = BTreeSet::new();
        for s in md.snapshots() {
            refs.snapshots += 1;
            add(s.manifest_list(), &mut refs);
            let bytes = self
                .file_io
                .new_input(s.manifest_list())
                .io(|| format!("open manifest list {}", s.manifest_list()))?
                .read()
                .await
                .io(|| format!("read manifest list {}", s.manifest_list()))?;
            let list = ManifestList::parse_with_version(&bytes, md.format_version())
                .io(|| format!("parse manifest list {}", s.manifest_list()))?;
            for mf in list.consume_entries() {
                if manifests.insert(mf.manifest_path.clone()) {
                    add(&mf.manifest_path, &mut refs);
                    let m = self.manifests.get(&self.file_io, &mf).await?;
                    for e in m.entries().iter().filter(|e| e.is_alive()) {
                        add(e.file_path(), &mut refs);
                    }
                }
            }
        }
        refs.manifests = manifests.len();
        Ok(refs)
    }

    /// Deletes `paths` (canonical, as the policy picked them from [`Self::list_files`]),
    /// refusing any path outside the table's data and metadata folders. A file that cannot be
    /// deleted is counted and logged, never fatal: an orphan costs storage only.
    pub async fn delete_orphans(&self, paths: &[String]) -> Result<OrphansDeleted> {
        let l = self.load().await?;
        let prefixes = table_prefixes(&l.metadata)?;
        if let Some(p) = paths
            .iter()
            .find(|p| !prefixes.iter().any(|pre| p.starts_with(pre.as_str())))
        {
            return Err(Error::new(
                ErrorKind::Internal,
                format!("refusing to delete {p}: outside the table's folders {prefixes:?}"),
            ));
        }
        let mut out = OrphansDeleted::default();
        for p in paths {
            match self.file_io.delete(p).await {
                Ok(()) => out.deleted += 1,
                Err(e) => {
                    out.failed += 1;
                    tracing::warn!(path = %p, error = %e, "could not delete an orphan file");
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        let c = |p: &str| canonical_path(p);
        let want = Some("file:///w/t/data/a.parquet".to_string());
        assert_eq!(c("file:///w/t/data/a.parquet"), want);
        assert_eq!(c("file:/w/t/data/a.parquet"), want);
        assert_eq!(c("/w/t/data/a.parquet"), want);
        assert_eq!(c("/w//t/data/a.parquet"), want);
        assert_eq!(c("file://localhost/w/t/data/a.parquet"), want);
        let s3 = Some("s3://b/w/t/a.parquet".to_string());
        assert_eq!(c("s3://b/w/t/a.parquet"), s3);
        assert_eq!(c("s3a://b/w/t/a.parquet"), s3);
        assert_eq!(c("S3N://b/w/t/a.parquet"), s3);
        assert_eq!(
            c("s3://b/w//t/a.parquet").as_deref(),
            Some("s3://b/w//t/a.parquet")
        );
        assert_eq!(c("gs://b/a"), None);
        assert_eq!(c("relative/a"), None);
        assert_eq!(c("file://host/a"), None);
        assert_eq!(c("s3://bucket-only"), None);
    }
}
