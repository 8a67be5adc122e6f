//! The pipeline definition: the user's YAML file (sources, one event fold, sinks,
//! orchestration, declared state types, snapshot policy), loaded into types with every
//! problem found reported at its YAML path and line.
//!
//! Loading never stops at the first problem and never panics on input: [`parse`] returns a
//! [`Loaded`], a value plus problems, and the value is present only when no problem is an
//! error. The seed file (`seed/order-events-pipeline.yaml`) must load unchanged, so fields
//! refold does not use the way the seed means them (`engine: flink`) are accepted with a
//! warning rather than rejected.
//!
//! Module map: [`yaml`] walks the YAML tree with paths and lines, [`env`] substitutes
//! `${VAR}`, [`duration`] parses `30s`/`1h30m`, [`read`] turns each section into its type,
//! [`validate`] runs the checks that span sections (references, merge keys, fold compiles),
//! [`problem`] is what all of them report.

pub mod duration;
pub mod env;
pub mod limits;
pub mod problem;
mod read;
mod validate;
mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

pub use duration::{DurationError, parse_duration_ms};
pub use problem::{Pos, Problem, Severity};

use crate::error::{Error, ErrorKind};

/// A loaded, validated pipeline. Invariants once returned by [`parse`]/[`load`]: at least
/// one source, transformation and sink; every transformation's input names a source and
/// has a sink; merge keys equal the key field; names are unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipeline {
    pub metadata: Metadata,
    pub sources: BTreeMap<String, Source>,
    pub transformations: Vec<Transformation>,
    pub sinks: BTreeMap<String, Sink>,
    pub orchestration: Orchestration,
    pub state_types: BTreeMap<String, StateType>,
    pub snapshots: SnapshotPolicy,
    pub compaction: CompactionPolicy,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    pub name: String,
    pub version: Option<String>,
    pub owner: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The key under `sources:`.
    pub name: String,
    pub kind: SourceKind,
    /// Bootstrap servers (or an MSK ARN), usually from `${KAFKA_CONNECTION}`.
    pub connection: String,
    pub topic: String,
    pub consumer_group: String,
    pub format: Format,
    pub start_offset: StartOffset,
    /// Event types to fold; empty means every type. Others are skipped, not dead-lettered.
    pub event_types: Vec<String>,
    /// The event archive of this source (`archive:`): on unless `archive: false`.
    pub archive: SourceArchive,
    /// The topic's partition count (`partitions:`), recorded in the state table when it is
    /// created; a record from a partition at or past it is refused (the topic grew, so keys
    /// may have moved between partitions). None: no check.
    pub partitions: Option<u32>,
}

/// `sources.<name>.archive`: `false`, `true`, or `{enabled: bool, table: ns.name}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceArchive {
    pub enabled: bool,
    /// None: `<namespace of the sink's table>.<source name>_archive`.
    pub table: Option<TableName>,
}

impl Default for SourceArchive {
    fn default() -> Self {
        Self {
            enabled: true,
            table: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    Kafka,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// The seed's JSON event envelope.
    Json,
}

/// Where a consumer group with no committed offset starts. Defaults to `Earliest`: a
/// projection built from `latest` would silently miss every earlier event of its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StartOffset {
    #[default]
    Earliest,
    Latest,
    Offset(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transformation {
    pub name: String,
    pub kind: TransformationKind,
    /// The source this transformation reads (a key of `sources:`).
    pub input: String,
    /// The entity key: `data.<key_field>` of each event (else its `entity_id`), and the
    /// key column of the state table.
    pub key_field: String,
    /// A declared state type (columns of the table); None or undeclared: one JSON column.
    pub state_type: Option<String>,
    pub fold: FoldSource,
    pub on_error: ErrorPolicy,
    pub limits: FoldLimits,
    /// Old event shapes turned into the current one before the fold (`upcasters:`).
    pub upcasters: Vec<Upcaster>,
}

/// One step of an event type's history: `upcast(event)` (Starlark) returns the `data` of
/// version `from_version + 1` for an event of `event_type` at version `from_version`.
/// Steps chain: v1 -> v2 -> v3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upcaster {
    pub event_type: String,
    pub from_version: i64,
    /// `function:` as written; `line` is its first line in the pipeline file.
    pub source: String,
    pub line: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransformationKind {
    EventFold,
}

/// Where a transformation's fold comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FoldSource {
    /// `fold_function:` as written (no `${VAR}` substitution in code). `line` is the 1-based
    /// line in the pipeline file of the source's first line, so fold errors can be reported
    /// against the file the user edits.
    Starlark { source: String, line: usize },
    /// `fold_native:` names a fold compiled into refold.
    Native { name: String },
}

/// What happens to an event whose fold fails. The default keeps the partition moving (a
/// poison event must not stall every later event of other keys) without losing the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ErrorPolicy {
    /// Record the event in the dead-letter table and go on.
    #[default]
    DeadLetter,
    /// Fail the batch (the trigger retries it).
    Fail,
    /// Drop the event (logged) and go on.
    Skip,
}

/// Limits on one fold call. Each is > 0: a fold must be bounded to be replayable in a
/// Lambda with a fixed time and memory budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FoldLimits {
    pub max_steps_per_event: u64,
    pub max_heap_bytes: u64,
    pub max_call_depth: usize,
}

impl FoldLimits {
    pub const DEFAULT_MAX_STEPS_PER_EVENT: u64 = 100_000;
    pub const DEFAULT_MAX_HEAP_BYTES: u64 = 64 * 1024 * 1024;
    pub const DEFAULT_MAX_CALL_DEPTH: usize = 32;
}

impl Default for FoldLimits {
    fn default() -> Self {
        Self {
            max_steps_per_event: Self::DEFAULT_MAX_STEPS_PER_EVENT,
            max_heap_bytes: Self::DEFAULT_MAX_HEAP_BYTES,
            max_call_depth: Self::DEFAULT_MAX_CALL_DEPTH,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sink {
    /// The key under `sinks:`.
    pub name: String,
    pub kind: SinkKind,
    pub table: TableName,
    pub mode: SinkMode,
    pub merge_keys: Vec<String>,
    /// The transformation whose output this sink writes, as written; None means the only
    /// transformation (allowed only when there is exactly one). Use [`Pipeline::sink_of`].
    pub input: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SinkKind {
    Iceberg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SinkMode {
    /// One row per key: the new state replaces the key's row.
    #[default]
    MergeOnKey,
    /// Every folded state is appended (a history of states).
    Append,
}

/// An Iceberg table identifier: `domain.orders.current_state` is namespace
/// `["domain", "orders"]`, name `current_state`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName {
    pub namespace: Vec<String>,
    pub name: String,
}

impl TableName {
    /// Splits a dotted name; at least a namespace and a name, no empty parts. Iceberg
    /// catalogs (Glue, SQL, REST) all need a namespace, so a bare name is rejected here
    /// rather than at the first commit.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.trim().split('.').collect();
        let bad = || {
            format!(
                "bad table name `{text}`: expected `namespace.table`, e.g. domain.orders.current_state"
            )
        };
        if parts.len() < 2 || parts.iter().any(|p| p.trim().is_empty() || p.trim() != *p) {
            return Err(bad());
        }
        let (name, namespace) = parts.split_last().ok_or_else(bad)?;
        Ok(Self {
            namespace: namespace.iter().map(|s| s.to_string()).collect(),
            name: name.to_string(),
        })
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.namespace {
            write!(f, "{part}.")?;
        }
        f.write_str(&self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Orchestration {
    pub engine: Engine,
    pub checkpoint_interval_ms: u64,
}

impl Orchestration {
    pub const DEFAULT_CHECKPOINT_INTERVAL_MS: u64 = 30_000;
}

impl Default for Orchestration {
    fn default() -> Self {
        Self {
            engine: Engine::Lambda,
            checkpoint_interval_ms: Self::DEFAULT_CHECKPOINT_INTERVAL_MS,
        }
    }
}

/// The engine named in the file. refold always runs on AWS Lambda; `Flink` is kept so
/// files written for a Flink deployment (the seed) load, with a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Engine {
    #[default]
    Lambda,
    Flink,
}

/// A declared state shape: the state table gets one typed column per declared column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateType {
    pub name: String,
    pub columns: Vec<Column>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    pub required: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    String,
    Long,
    Double,
    Boolean,
    Timestamp,
    Json,
}

impl ColumnType {
    /// The names accepted in YAML, with aliases users bring from SQL and Python.
    pub const NAMES: &'static [(&'static str, ColumnType)] = &[
        ("string", ColumnType::String),
        ("long", ColumnType::Long),
        ("int", ColumnType::Long),
        ("integer", ColumnType::Long),
        ("double", ColumnType::Double),
        ("float", ColumnType::Double),
        ("boolean", ColumnType::Boolean),
        ("bool", ColumnType::Boolean),
        ("timestamp", ColumnType::Timestamp),
        ("json", ColumnType::Json),
    ];
}

/// Columns refold adds to every state table; a state type may not declare them.
pub const BOOKKEEPING_COLUMNS: &[&str] = &[
    "source_partition",
    "last_offset",
    "last_event_id",
    "last_event_time",
    "events_folded",
];

/// The tenant column refold adds to every state table (tenant isolation).
pub const TENANT_COLUMN: &str = "tenant_id";

/// The single JSON column holding the state when no state type is declared.
pub const JSON_STATE_COLUMN: &str = "state";

/// When and how many state checkpoints are kept (the seed document's `snapshot_interval`
/// 1 hour, `max_snapshots` 24, `snapshot_store` Iceberg), and how long the snapshot-compactor
/// keeps what no checkpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SnapshotPolicy {
    /// A checkpoint is taken when this long has passed since the last one.
    pub interval_ms: u64,
    /// Checkpoints kept; a new one beyond this drops the oldest.
    pub max_snapshots: u32,
    pub store: SnapshotStore,
    /// Expiry keeps every snapshot that was the table's current state within this long
    /// (`keep_recent`): time travel to any moment of that window stays exact.
    pub keep_recent_ms: u64,
    /// A file no kept snapshot references is deleted only once it is older than this
    /// (`orphan_grace`): a commit in flight may still be about to reference a younger one.
    pub orphan_grace_ms: u64,
}

impl SnapshotPolicy {
    pub const DEFAULT_INTERVAL_MS: u64 = 3_600_000;
    pub const DEFAULT_MAX_SNAPSHOTS: u32 = 24;
    pub const DEFAULT_KEEP_RECENT_MS: u64 = 3_600_000;
    pub const DEFAULT_ORPHAN_GRACE_MS: u64 = 86_400_000;
    /// The shortest `orphan_grace` accepted: four times the longest Lambda invocation
    /// (15 min), the longest a writer holds files it has not committed yet.
    pub const MIN_ORPHAN_GRACE_MS: u64 = 3_600_000;
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        Self {
            interval_ms: Self::DEFAULT_INTERVAL_MS,
            max_snapshots: Self::DEFAULT_MAX_SNAPSHOTS,
            store: SnapshotStore::Iceberg,
            keep_recent_ms: Self::DEFAULT_KEEP_RECENT_MS,
            orphan_grace_ms: Self::DEFAULT_ORPHAN_GRACE_MS,
        }
    }
}

/// When the snapshot-compactor rewrites a source partition of the state table, and into
/// what (the `compaction:` section). A partition is compacted when any threshold is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CompactionPolicy {
    /// Position-delete files in the partition (each merge that updates rows adds one).
    pub delete_files: u32,
    /// Data files smaller than `small_file_bytes` in the partition.
    pub small_files: u32,
    pub small_file_bytes: u64,
    /// Deleted rows as a share of the partition's data file rows, in percent.
    pub deleted_rows_percent: u32,
    /// Compacted data files roll over at about this size.
    pub target_file_bytes: u64,
    /// Manifests of one kind (data or deletes) of one partition before they are merged.
    pub manifests: u32,
}

impl CompactionPolicy {
    pub const DEFAULT_TARGET_FILE_BYTES: u64 = 128 * 1024 * 1024;
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        Self {
            delete_files: 8,
            small_files: 5,
            // Iceberg's rewrite_data_files: a file under 75% of the target is small.
            small_file_bytes: Self::DEFAULT_TARGET_FILE_BYTES / 4 * 3,
            deleted_rows_percent: 20,
            target_file_bytes: Self::DEFAULT_TARGET_FILE_BYTES,
            manifests: 8,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SnapshotStore {
    /// Checkpoints are Iceberg tags on state snapshots.
    #[default]
    Iceberg,
}

/// The result of loading: the pipeline when no problem is an error, and every problem
/// (errors and warnings) sorted by line.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub pipeline: Option<Pipeline>,
    pub problems: Vec<Problem>,
}

impl Loaded {
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| p.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| !p.is_error())
    }

    /// The pipeline, or an `InvalidInput` error listing every error problem (one per line),
    /// for callers that cannot go on without one (a Lambda at cold start).
    pub fn into_pipeline(self) -> Result<Pipeline, Error> {
        match self.pipeline {
            Some(p) => Ok(p),
            None => {
                let lines: Vec<String> = self.errors().map(ToString::to_string).collect();
                Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("invalid pipeline:\n{}", lines.join("\n")),
                ))
            }
        }
    }
}

/// Reads and parses a pipeline file, substituting variables from the process environment.
/// Only I/O fails here; everything wrong with the content is in [`Loaded::problems`].
pub fn load(path: &Path) -> Result<Loaded, Error> {
    let file_name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let len = std::fs::metadata(path).map_or(0, |m| m.len());
    if len > limits::MAX_PIPELINE_BYTES as u64 {
        return Ok(oversized(&file_name, len));
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::new(ErrorKind::Io, "cannot read pipeline file")
            .with_source(e)
            .with_context(path.display().to_string())
    })?;
    Ok(parse(&text, &file_name, &|name| std::env::var(name).ok()))
}

/// Parses pipeline text. `file_name` is only used in messages; `env` resolves `${VAR}`
/// (a function, so tests and the CLI need not touch the process environment).
pub fn parse(text: &str, file_name: &str, env: &dyn Fn(&str) -> Option<String>) -> Loaded {
    if text.len() > limits::MAX_PIPELINE_BYTES {
        return oversized(file_name, text.len() as u64);
    }
    let root = match yaml::parse_tree(text, file_name) {
        Ok(root) => root,
        Err(problem) => {
            return Loaded {
                pipeline: None,
                problems: vec![problem],
            };
        }
    };
    let mut reader = yaml::Reader::new(file_name, env);
    let pipeline = read::read_pipeline(&mut reader, &root);
    validate::check(&mut reader, &pipeline);
    limits::check(&mut reader, &pipeline);
    let mut problems = reader.problems;
    problem::sort_by_position(&mut problems);
    let ok = !problems.iter().any(Problem::is_error);
    Loaded {
        pipeline: ok.then_some(pipeline),
        problems,
    }
}

/// A pipeline refused for its size alone, before it is parsed.
fn oversized(file_name: &str, len: u64) -> Loaded {
    let message = format!(
        "the pipeline is {len} bytes, more than the limit of {} bytes",
        limits::MAX_PIPELINE_BYTES
    );
    Loaded {
        pipeline: None,
        problems: vec![Problem::error(file_name, "", None, message)],
    }
}

impl Pipeline {
    /// The first transformation: refold runs one fold per pipeline today.
    pub fn transformation(&self) -> &Transformation {
        self.transformations
            .first()
            .expect("a validated pipeline has at least one transformation")
    }

    pub fn source_of(&self, t: &Transformation) -> &Source {
        self.sources
            .get(&t.input)
            .expect("a validated pipeline's transformation inputs name sources")
    }

    /// The event archive of `t`'s source, if it has one: its table is the configured one,
    /// else `<namespace of t's sink table>.<source name>_archive`.
    pub fn archive_table(&self, t: &Transformation) -> Option<TableName> {
        let source = self.source_of(t);
        if !source.archive.enabled {
            return None;
        }
        Some(source.archive.table.clone().unwrap_or_else(|| TableName {
            namespace: self.sink_of(t).table.namespace.clone(),
            name: format!("{}_archive", source.name),
        }))
    }

    /// The (first) sink writing `t`'s output.
    pub fn sink_of(&self, t: &Transformation) -> &Sink {
        self.sinks
            .values()
            .find(|s| s.input.as_deref().is_none_or(|input| input == t.name))
            .expect("a validated pipeline has a sink for every transformation")
    }

    /// The declared state type of `t`, None when it names none or an undeclared one.
    pub fn state_type_of(&self, t: &Transformation) -> Option<&StateType> {
        t.state_type
            .as_ref()
            .and_then(|name| self.state_types.get(name))
    }

    /// Whether `source` folds events of `event_type` (an empty `event_types` takes all).
    pub fn accepts(&self, source: &Source, event_type: &str) -> bool {
        source.event_types.is_empty() || source.event_types.iter().any(|t| t == event_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_split_on_dots() {
        let t = TableName::parse("domain.orders.current_state");
        assert_eq!(
            t,
            Ok(TableName {
                namespace: vec!["domain".into(), "orders".into()],
                name: "current_state".into()
            })
        );
        assert_eq!(
            t.map(|t| t.to_string()).as_deref(),
            Ok("domain.orders.current_state")
        );
        for bad in ["orders", "a..b", ".a", "a.", "", "a. b"] {
            assert!(TableName::parse(bad).is_err(), "{bad}");
        }
    }
}
