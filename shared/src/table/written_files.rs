//! The manifests and manifest lists this process wrote, kept as bytes so that reading one
//! back costs no GET.
//!
//! A warm container's next batch reads what its own commit wrote a moment before: the new
//! manifest list and the new manifests (the prefetch lists the live files from them). On S3
//! those are two round trips the decode cannot hide; here they are a lookup. The bytes are
//! the file's bytes, parsed on read as any reader parses them, so a cached file reads as the
//! stored one (no "as written" form to keep equal to an "as read" one).
//!
//! Safe for the same reason as `metadata_cache`: Iceberg never rewrites a file under
//! `metadata/`, and refold names each with a fresh UUID. Only a write that succeeded is
//! kept; a delete drops the file, so a read after it fails as the store's would. The
//! wrapper sits under every FileIO refold builds ([`CachingStorageFactory`]).

use std::num::NonZeroUsize;
use std::ops::Range;
use std::sync::{Arc, LazyLock, Mutex};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use iceberg::io::{
    FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig,
    StorageFactory,
};
use iceberg_storage_opendal::OpenDalResolvingStorageFactory;
use lru::LruCache;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Files kept: a batch writes five (two tables' manifest lists, three manifests); the next
/// batch reads them. Room for a few batches and a compaction's.
const MAX_FILES: usize = 64;
/// Bytes kept in all (a manifest of one file is about 6 KB, a list a few hundred bytes a
/// manifest): a bound on what the cache adds to a container's memory.
const MAX_TOTAL_BYTES: usize = 4 << 20;
/// A larger file (a compaction's manifest of many files) is not kept.
const MAX_FILE_BYTES: usize = 1 << 20;

/// Whether `path` is a manifest or manifest list: Avro under a table's `metadata/`.
fn is_cached_kind(path: &str) -> bool {
    path.ends_with(".avro") && path.contains("/metadata/")
}

/// Written files' bytes by location, least recently used evicted first.
#[derive(Debug)]
pub struct WrittenFiles {
    inner: Mutex<Files>,
}

#[derive(Debug)]
struct Files {
    lru: LruCache<String, Bytes>,
    total_bytes: usize,
}

/// The process's cache, under every FileIO refold builds.
static WRITTEN: LazyLock<Arc<WrittenFiles>> = LazyLock::new(|| Arc::new(WrittenFiles::new()));

impl WrittenFiles {
    fn new() -> Self {
        Self {
            inner: Mutex::new(Files {
                lru: LruCache::new(NonZeroUsize::new(MAX_FILES).unwrap_or(NonZeroUsize::MIN)),
                total_bytes: 0,
            }),
        }
    }

    fn get(&self, path: &str) -> Option<Bytes> {
        self.inner.lock().ok()?.lru.get(path).cloned()
    }

    fn insert(&self, path: &str, bytes: Bytes) {
        if bytes.len() > MAX_FILE_BYTES || !is_cached_kind(path) {
            return;
        }
        let Ok(mut f) = self.inner.lock() else { return };
        f.total_bytes += bytes.len();
        if let Some((_, old)) = f.lru.push(path.to_string(), bytes) {
            f.total_bytes -= old.len();
        }
        while f.total_bytes > MAX_TOTAL_BYTES {
            match f.lru.pop_lru() {
                Some((_, b)) => f.total_bytes -= b.len(),
                None => break,
            }
        }
        debug_assert!(f.lru.len() <= MAX_FILES && f.total_bytes <= MAX_TOTAL_BYTES);
    }

    fn remove(&self, path: &str) {
        if let Ok(mut f) = self.inner.lock()
            && let Some(b) = f.lru.pop(path)
        {
            f.total_bytes -= b.len();
        }
    }

    fn remove_prefix(&self, prefix: &str) {
        let Ok(mut f) = self.inner.lock() else { return };
        let gone: Vec<String> = f
            .lru
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            if let Some(b) = f.lru.pop(&k) {
                f.total_bytes -= b.len();
            }
        }
    }
}

/// The bytes the process cache holds for `path` (for tests that compare them with the file).
#[cfg(test)]
pub(crate) fn written(path: &str) -> Option<Bytes> {
    WRITTEN.get(path)
}

/// Builds the store's storage (OpenDAL: local files, S3) wrapped in [`CachingStorage`].
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CachingStorageFactory {
    inner: OpenDalResolvingStorageFactory,
}

#[typetag::serde]
impl StorageFactory for CachingStorageFactory {
    fn build(&self, config: &StorageConfig) -> iceberg::Result<Arc<dyn Storage>> {
        Ok(Arc::new(CachingStorage {
            inner: self.inner.build(config)?,
            files: WRITTEN.clone(),
        }))
    }
}

/// A storage that keeps the manifests and manifest lists written through it (see the module).
#[derive(Debug, Clone)]
pub struct CachingStorage {
    inner: Arc<dyn Storage>,
    files: Arc<WrittenFiles>,
}

impl Serialize for CachingStorage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.inner.as_ref().serialize(s)
    }
}

impl<'de> Deserialize<'de> for CachingStorage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let inner: Box<dyn Storage> = Box::deserialize(d)?;
        Ok(Self {
            inner: Arc::from(inner),
            files: WRITTEN.clone(),
        })
    }
}

#[async_trait]
#[typetag::serde]
impl Storage for CachingStorage {
    async fn exists(&self, path: &str) -> iceberg::Result<bool> {
        if self.files.get(path).is_some() {
            return Ok(true);
        }
        self.inner.exists(path).await
    }

    async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
        match self.files.get(path) {
            Some(b) => Ok(FileMetadata {
                size: b.len() as u64,
            }),
            None => self.inner.metadata(path).await,
        }
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        match self.files.get(path) {
            Some(b) => Ok(b),
            None => self.inner.read(path).await,
        }
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        match self.files.get(path) {
            Some(b) => Ok(Box::new(BytesRead(b))),
            None => self.inner.reader(path).await,
        }
    }

    async fn write(&self, path: &str, bs: Bytes) -> iceberg::Result<()> {
        self.inner.write(path, bs.clone()).await?;
        self.files.insert(path, bs);
        Ok(())
    }

    async fn writer(&self, path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        let inner = self.inner.writer(path).await?;
        if !is_cached_kind(path) {
            return Ok(inner);
        }
        Ok(Box::new(TeeWrite {
            inner,
            files: self.files.clone(),
            path: path.to_string(),
            copy: Some(BytesMut::new()),
        }))
    }

    async fn delete(&self, path: &str) -> iceberg::Result<()> {
        self.files.remove(path);
        self.inner.delete(path).await
    }

    async fn delete_prefix(&self, path: &str) -> iceberg::Result<()> {
        self.files.remove_prefix(path);
        self.inner.delete_prefix(path).await
    }

    async fn delete_stream(&self, paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        let files = self.files.clone();
        let paths = paths.inspect(move |p| files.remove(p)).boxed();
        self.inner.delete_stream(paths).await
    }

    fn new_input(&self, path: &str) -> iceberg::Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> iceberg::Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

/// A cached file's bytes, read by range.
struct BytesRead(Bytes);

#[async_trait]
impl FileRead for BytesRead {
    async fn read(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        let len = self.0.len() as u64;
        if range.start > range.end || range.end > len {
            return Err(iceberg::Error::new(
                iceberg::ErrorKind::DataInvalid,
                format!("read of bytes {range:?} past the end of a {len}-byte file"),
            ));
        }
        Ok(self.0.slice(range.start as usize..range.end as usize))
    }
}

/// A writer that also keeps what it writes, cached when the close succeeds.
struct TeeWrite {
    inner: Box<dyn FileWrite>,
    files: Arc<WrittenFiles>,
    path: String,
    /// `None` once the file outgrew [`MAX_FILE_BYTES`] (not cached).
    copy: Option<BytesMut>,
}

#[async_trait]
impl FileWrite for TeeWrite {
    async fn write(&mut self, bs: Bytes) -> iceberg::Result<()> {
        if let Some(c) = &mut self.copy {
            if c.len() + bs.len() > MAX_FILE_BYTES {
                self.copy = None;
            } else {
                c.extend_from_slice(&bs);
            }
        }
        self.inner.write(bs).await
    }

    async fn close(&mut self) -> iceberg::Result<()> {
        self.inner.close().await?;
        if let Some(c) = self.copy.take() {
            self.files.insert(&self.path, c.freeze());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// A storage on local files with a cache of its own (the process's is shared by every
    /// test of the crate).
    fn storage() -> CachingStorage {
        let inner = OpenDalResolvingStorageFactory::new()
            .build(&StorageConfig::new())
            .unwrap();
        CachingStorage {
            inner,
            files: Arc::new(WrittenFiles::new()),
        }
    }

    #[tokio::test]
    async fn a_written_manifest_reads_back_from_memory_until_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage();
        let file = dir.path().join("t/metadata/m0.avro");
        let path = format!("file://{}", file.display());
        let mut w = s.new_output(&path).unwrap().writer().await.unwrap();
        w.write(Bytes::from_static(b"abc")).await.unwrap();
        w.write(Bytes::from_static(b"def")).await.unwrap();
        w.close().await.unwrap();
        assert_eq!(s.files.get(&path).as_deref(), Some(&b"abcdef"[..]));
        // The store has the same bytes; a change behind the cache's back shows which is read.
        assert_eq!(std::fs::read(&file).unwrap(), b"abcdef");
        std::fs::write(&file, b"other!").unwrap();
        let input = s.new_input(&path).unwrap();
        assert_eq!(&input.read().await.unwrap()[..], b"abcdef");
        assert_eq!(input.metadata().await.unwrap().size, 6);
        let r = input.reader().await.unwrap();
        assert_eq!(&r.read(1..4).await.unwrap()[..], b"bcd");
        assert!(r.read(4..9).await.is_err());
        s.delete(&path).await.unwrap();
        assert_eq!(s.files.get(&path), None);
        assert!(s.new_input(&path).unwrap().read().await.is_err());
    }

    #[tokio::test]
    async fn only_metadata_avro_files_that_were_written_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage();
        let root = format!("file://{}/t", dir.path().display());
        let data = format!("{root}/data/part-0.avro");
        let json = format!("{root}/metadata/00001-x.metadata.json");
        let avro = format!("{root}/metadata/snap-1.avro");
        for p in [&data, &json, &avro] {
            s.write(p, Bytes::from_static(b"x")).await.unwrap();
        }
        assert_eq!(s.files.get(&data), None);
        assert_eq!(s.files.get(&json), None);
        assert_eq!(s.files.get(&avro).as_deref(), Some(&b"x"[..]));
        // A failed write keeps nothing: a file stands where its folder would be.
        std::fs::write(dir.path().join("t/metadata/sub"), b"a file").unwrap();
        let lost = format!("{root}/metadata/sub/lost.avro");
        assert!(s.write(&lost, Bytes::from_static(b"y")).await.is_err());
        assert_eq!(s.files.get(&lost), None);
        s.delete_prefix(&format!("{root}/")).await.unwrap();
        assert_eq!(s.files.get(&avro), None);
    }

    #[test]
    fn the_cache_keeps_its_bounds() {
        let files = WrittenFiles::new();
        let big = Bytes::from(vec![0u8; MAX_FILE_BYTES]);
        files.insert(
            "t/metadata/too-big.avro",
            Bytes::from(vec![0u8; MAX_FILE_BYTES + 1]),
        );
        assert_eq!(files.get("t/metadata/too-big.avro"), None);
        for i in 0..8 {
            files.insert(&format!("t/metadata/{i}.avro"), big.clone());
        }
        // The least recently used went first.
        assert_eq!(files.get("t/metadata/0.avro"), None);
        assert!(files.get("t/metadata/7.avro").is_some());
        for i in 0..2 * MAX_FILES {
            files.insert(
                &format!("t/metadata/small-{i}.avro"),
                Bytes::from_static(b"z"),
            );
        }
        let f = files.inner.lock().unwrap();
        assert!(f.total_bytes <= MAX_TOTAL_BYTES);
        assert_eq!(f.lru.len(), MAX_FILES);
        assert_eq!(f.total_bytes, MAX_FILES);
    }
}
