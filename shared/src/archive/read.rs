//! Scans of the archive (iceberg-rust's table scan: manifests pruned by partition and
//! column bounds, row groups and rows by the predicate).

use std::collections::BTreeMap;

use futures::TryStreamExt;
use iceberg::expr::{Predicate, Reference};
use iceberg::spec::{Datum, PrimitiveLiteral};

use super::layout::{
    ENTITY_KEY, EVENT_TIME, KAFKA_OFFSET, KAFKA_PARTITION, KAFKA_TOPIC, TENANT_ID,
};
use super::{Archive, ArchivedEvent, event};
use crate::error::{Error, ErrorKind, Result};

/// Most events one scan returns: a caller reads longer ranges in pieces.
pub const MAX_EVENTS_PER_READ: usize = 1_000_000;

impl Archive {
    /// An iceberg-rust `Table` of the current metadata.
    pub async fn iceberg_table(&self) -> Result<iceberg::table::Table> {
        crate::table::iceberg_table(&self.file_io, &self.ident, self.load().await?)
    }

    /// The archived events of `partition` at offsets `from..to`, in offset order.
    pub async fn read_range(
        &self,
        partition: i32,
        from: i64,
        to: i64,
    ) -> Result<Vec<ArchivedEvent>> {
        let filter = self
            .topic_is()
            .and(Reference::new(KAFKA_PARTITION).equal_to(Datum::int(partition)))
            .and(Reference::new(KAFKA_OFFSET).greater_than_or_equal_to(Datum::long(from)))
            .and(Reference::new(KAFKA_OFFSET).less_than(Datum::long(to)));
        let mut events = self.scan(filter).await.map_err(|e| {
            e.with_context(format!(
                "read {} partition {partition} offsets {from}..{to}",
                self.cfg.table
            ))
        })?;
        events.sort_by_key(|e| e.kafka_offset);
        Ok(events)
    }

    /// One entity's archived events (its row key, as the pipeline folds), optionally only
    /// those whose event time is at most `until_us`, in (partition, offset) order.
    pub async fn read_key(
        &self,
        tenant: Option<&str>,
        key: &str,
        until_us: Option<i64>,
    ) -> Result<Vec<ArchivedEvent>> {
        let mut filter = self
            .topic_is()
            .and(Reference::new(ENTITY_KEY).equal_to(Datum::string(key)));
        if let Some(tenant) = tenant {
            filter = filter.and(Reference::new(TENANT_ID).equal_to(Datum::string(tenant)));
        }
        if let Some(t) = until_us {
            filter = filter.and(
                Reference::new(EVENT_TIME).less_than_or_equal_to(Datum::timestamptz_micros(t)),
            );
        }
        let mut events = self
            .scan(filter)
            .await
            .map_err(|e| e.with_context(format!("read key {key} from {}", self.cfg.table)))?;
        events.sort_by_key(|e| (e.kafka_partition, e.kafka_offset));
        Ok(events)
    }

    /// The first archived offset of each partition (from the data files' column bounds;
    /// no data is read).
    pub async fn first_offsets(&self) -> Result<BTreeMap<i32, i64>> {
        self.scan_bounds()
            .await
            .map_err(|e| e.with_context(format!("first offsets of {}", self.cfg.table)))
    }

    fn topic_is(&self) -> Predicate {
        Reference::new(KAFKA_TOPIC).equal_to(Datum::string(&self.cfg.topic))
    }

    async fn scan(&self, filter: Predicate) -> Result<Vec<ArchivedEvent>> {
        let table = self.iceberg_table().await?;
        let scan = table
            .scan()
            .with_filter(filter)
            .build()
            .map_err(|e| Error::new(ErrorKind::Io, "plan archive scan").with_source(e))?;
        let stream = scan
            .to_arrow()
            .await
            .map_err(|e| Error::new(ErrorKind::Io, "scan archive").with_source(e))?;
        let batches: Vec<_> = stream
            .try_collect()
            .await
            .map_err(|e| Error::new(ErrorKind::Io, "read archive files").with_source(e))?;
        let mut out = Vec::new();
        for b in &batches {
            out.extend(event::from_batch(b)?);
            if out.len() > MAX_EVENTS_PER_READ {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "more than {MAX_EVENTS_PER_READ} archived events in one read: read a shorter range"
                    ),
                ));
            }
        }
        Ok(out)
    }

    /// Per partition, the lowest archived offset, from the `kafka_offset` lower bounds of
    /// the live data files (exact: refold writes untruncated bounds and one Kafka partition
    /// per file, in appends and compactions). A file of several partitions (another
    /// engine rewrote the archive) makes it read every row instead.
    async fn scan_bounds(&self) -> Result<BTreeMap<i32, i64>> {
        let l = self.load().await?;
        let md = &l.metadata;
        let live =
            crate::table::files::live_files(&self.file_io, md, None, &self.manifests).await?;
        let schema = md.current_schema();
        let id = |name: &str| crate::table::schema::field_id(schema, name);
        let (pid, oid) = (id(KAFKA_PARTITION)?, id(KAFKA_OFFSET)?);
        let mut first: BTreeMap<i32, i64> = BTreeMap::new();
        for f in &live.data {
            let f = &f.file;
            let bound = |m: &std::collections::HashMap<i32, Datum>, id| match m
                .get(&id)
                .map(Datum::literal)
            {
                Some(PrimitiveLiteral::Int(v)) => Some(i64::from(*v)),
                Some(PrimitiveLiteral::Long(v)) => Some(*v),
                _ => None,
            };
            let (plo, phi) = (bound(f.lower_bounds(), pid), bound(f.upper_bounds(), pid));
            match (plo, phi, bound(f.lower_bounds(), oid)) {
                (Some(lo), Some(hi), Some(o)) if lo == hi => {
                    let p = i32::try_from(lo).unwrap_or(i32::MAX);
                    let e = first.entry(p).or_insert(o);
                    *e = (*e).min(o);
                }
                _ => return self.scan_first_offsets().await,
            }
        }
        Ok(first)
    }

    /// [`scan_bounds`](Self::scan_bounds) the slow way: every archived row read.
    async fn scan_first_offsets(&self) -> Result<BTreeMap<i32, i64>> {
        let mut first: BTreeMap<i32, i64> = BTreeMap::new();
        for e in self.scan(self.topic_is()).await? {
            let o = first.entry(e.kafka_partition).or_insert(e.kafka_offset);
            *o = (*o).min(e.kafka_offset);
        }
        Ok(first)
    }
}
