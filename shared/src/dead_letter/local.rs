//! Dead letters in a local folder (the embedded default: `<warehouse>/dead-letters`).

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{DeadLetter, DeadLetterStore, batch_object_name, decode_jsonl, encode_jsonl};
use crate::error::{Error, ErrorKind, Result};

/// Dead letters as files in a local folder: one JSONL file per batch, named by
/// [`batch_object_name`], written to a temporary name and renamed over the final one (never
/// half a file; a rewrite of the same batch replaces identical content).
#[derive(Debug, Clone)]
pub struct LocalDeadLetters {
    dir: PathBuf,
}

impl LocalDeadLetters {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every dead letter in the folder, files in name order ((pipeline, topic, partition, offset) order), then line order.
    pub async fn read_all(&self) -> Result<Vec<DeadLetter>> {
        let mut names = Vec::new();
        let mut rd = match tokio::fs::read_dir(&self.dir).await {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(e, &self.dir)),
        };
        while let Some(entry) = rd.next_entry().await.map_err(|e| io_err(e, &self.dir))? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".jsonl") && !name.starts_with('.') {
                names.push(name);
            }
        }
        names.sort();
        let mut out = Vec::new();
        for n in names {
            let p = self.dir.join(&n);
            let bytes = tokio::fs::read(&p).await.map_err(|e| io_err(e, &p))?;
            out.extend(decode_jsonl(&bytes).map_err(|e| e.with_context(p.display().to_string()))?);
        }
        Ok(out)
    }
}

fn io_err(e: std::io::Error, path: &Path) -> Error {
    Error::new(ErrorKind::Io, format!("dead letters at {}", path.display())).with_source(e)
}

#[async_trait]
impl DeadLetterStore for LocalDeadLetters {
    async fn put(&self, batch: &[DeadLetter]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let body = encode_jsonl(batch)?;
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| io_err(e, &self.dir))?;
        let name = batch_object_name(batch)?;
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let dst = self.dir.join(&name);
        tokio::fs::write(&tmp, &body)
            .await
            .map_err(|e| io_err(e, &tmp))?;
        // Durable before it counts: the batch's offsets move on once this returns.
        let f = tokio::fs::File::open(&tmp)
            .await
            .map_err(|e| io_err(e, &tmp))?;
        f.sync_all().await.map_err(|e| io_err(e, &tmp))?;
        tokio::fs::rename(&tmp, &dst)
            .await
            .map_err(|e| io_err(e, &dst))?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("file://{}", self.dir.display())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::dead_letter::DeadLetterKind;

    fn sample(offset: i64) -> DeadLetter {
        DeadLetter {
            topic: "domain.orders.events".into(),
            partition: 2,
            offset,
            timestamp_ms: None,
            key: None,
            raw: b"{".to_vec(),
            reason: "not JSON".into(),
            kind: DeadLetterKind::BadJson,
            pipeline: "p".into(),
        }
    }

    #[tokio::test]
    async fn local_store_one_sorted_file_per_batch() {
        let dir = std::env::temp_dir().join(format!("refold-dl-{}", uuid::Uuid::new_v4().simple()));
        let s = LocalDeadLetters::new(&dir);
        s.put(&[]).await.unwrap();
        assert!(s.read_all().await.unwrap().is_empty());
        for i in 0..5 {
            s.put(&[sample(i * 2), sample(i * 2 + 1)]).await.unwrap();
        }
        // The same batch again (a redelivery after a crash): same file, nothing doubled.
        s.put(&[sample(2), sample(3)]).await.unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 5, "{names:?}");
        assert!(
            names
                .iter()
                .all(|n| n.ends_with(".jsonl") && !n.starts_with('.'))
        );
        names.sort();
        let all = s.read_all().await.unwrap();
        assert_eq!(
            all.iter().map(|d| d.offset).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
