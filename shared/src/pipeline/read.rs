//! Reading each section of the pipeline file into its type.
//!
//! Every reader returns a value even when its input is wrong (empty strings, defaults),
//! having reported the problem: that keeps reading the rest of the file, so one run shows
//! every problem. [`super::parse`] drops the value when any problem is an error.

use std::collections::{BTreeMap, BTreeSet};

use marked_yaml::Node;

use super::duration::parse_duration_ms;
use super::limits::MAX_SOURCE_PARTITIONS;
use super::yaml::{Field, Reader, Shape, closest, entries, index, items, join};
use super::{
    BOOKKEEPING_COLUMNS, Column, ColumnType, CompactionPolicy, Engine, ErrorPolicy, FoldLimits,
    FoldSource, Format, Metadata, Orchestration, Pipeline, SinkKind, SinkMode, SnapshotPolicy,
    SnapshotStore, Source, SourceArchive, SourceKind, StartOffset, StateType, TENANT_COLUMN,
    TableName, Transformation, TransformationKind, Upcaster,
};
use super::{Sink, problem::Pos};

const TOP: Shape<'static> = Shape {
    known: &[
        "metadata",
        "sources",
        "transformations",
        "sinks",
        "orchestration",
        "state_types",
        "snapshots",
        "compaction",
    ],
    required: &["metadata", "sources", "transformations", "sinks"],
};

pub(crate) fn read_pipeline(r: &mut Reader<'_>, root: &Node) -> Pipeline {
    let top = Field {
        node: root,
        key_pos: None,
    };
    let Some(map) = r.mapping("", top) else {
        return empty_pipeline();
    };
    let fields = r.fields("", None, map, &TOP);
    Pipeline {
        metadata: fields
            .get("metadata")
            .map(|f| read_metadata(r, f))
            .unwrap_or_default(),
        sources: fields
            .get("sources")
            .map(|f| read_sources(r, f))
            .unwrap_or_default(),
        transformations: fields
            .get("transformations")
            .map(|f| read_transformations(r, f))
            .unwrap_or_default(),
        sinks: fields
            .get("sinks")
            .map(|f| read_sinks(r, f))
            .unwrap_or_default(),
        orchestration: fields
            .get("orchestration")
            .map(|f| read_orchestration(r, f))
            .unwrap_or_default(),
        state_types: fields
            .get("state_types")
            .map(|f| read_state_types(r, f))
            .unwrap_or_default(),
        snapshots: fields
            .get("snapshots")
            .map(|f| read_snapshots(r, f))
            .unwrap_or_default(),
        compaction: fields
            .get("compaction")
            .map(|f| read_compaction(r, f))
            .unwrap_or_default(),
    }
}

fn empty_pipeline() -> Pipeline {
    Pipeline {
        metadata: Metadata::default(),
        sources: BTreeMap::new(),
        transformations: Vec::new(),
        sinks: BTreeMap::new(),
        orchestration: Orchestration::default(),
        state_types: BTreeMap::new(),
        snapshots: SnapshotPolicy::default(),
        compaction: CompactionPolicy::default(),
    }
}

/// One of a fixed set of words (compared without case), with a typo hint when it is not.
fn choice<T: Copy>(
    r: &mut Reader<'_>,
    path: &str,
    f: Field<'_>,
    what: &str,
    options: &[(&str, T)],
) -> Option<T> {
    let text = r.string(path, f)?;
    let word = text.trim().to_ascii_lowercase();
    if let Some((_, value)) = options.iter().find(|(name, _)| *name == word) {
        return Some(*value);
    }
    let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
    let hint = match closest(&word, &names) {
        Some(near) => format!("did you mean `{near}`?"),
        None => format!("known: {}", names.join(", ")),
    };
    r.error(path, f.pos(), format!("unknown {what} `{text}` ({hint})"));
    None
}

fn read_metadata(r: &mut Reader<'_>, f: Field<'_>) -> Metadata {
    const SHAPE: Shape<'static> = Shape {
        known: &["name", "version", "owner"],
        required: &["name"],
    };
    let path = "metadata";
    let Some(map) = r.mapping(path, f) else {
        return Metadata::default();
    };
    let fields = r.fields(path, f.key_pos, map, &SHAPE);
    Metadata {
        name: r
            .required_string(&join(path, "name"), fields.get("name"))
            .unwrap_or_default(),
        version: fields
            .get("version")
            .and_then(|v| r.string(&join(path, "version"), v)),
        owner: fields
            .get("owner")
            .and_then(|v| r.string(&join(path, "owner"), v)),
    }
}

fn read_sources(r: &mut Reader<'_>, f: Field<'_>) -> BTreeMap<String, Source> {
    let path = "sources";
    let mut out = BTreeMap::new();
    let Some(map) = r.mapping(path, f) else {
        return out;
    };
    if map.is_empty() {
        r.error(path, f.pos(), "declare at least one source");
    }
    for (key, field) in entries(map) {
        let source_path = join(path, key.as_str());
        r.remember_key(&source_path, key);
        let source = read_source(r, &source_path, key.as_str(), field);
        out.insert(key.as_str().to_string(), source);
    }
    out
}

fn read_source(r: &mut Reader<'_>, path: &str, name: &str, f: Field<'_>) -> Source {
    const SHAPE: Shape<'static> = Shape {
        known: &[
            "type",
            "connection",
            "topic",
            "consumer_group",
            "format",
            "start_offset",
            "event_types",
            "archive",
            "partitions",
        ],
        required: &["type", "connection", "topic", "consumer_group"],
    };
    let mut source = Source {
        name: name.to_string(),
        kind: SourceKind::Kafka,
        connection: String::new(),
        topic: String::new(),
        consumer_group: String::new(),
        format: Format::Json,
        start_offset: StartOffset::default(),
        event_types: Vec::new(),
        archive: SourceArchive::default(),
        partitions: None,
    };
    let Some(map) = r.mapping(path, f) else {
        return source;
    };

    let fields = r.fields(path, f.key_pos, map, &SHAPE);
    if let Some(kind) = fields.get("type").filter(|t| !t.is_null()) {
        source.kind = choice(
            r,
            &join(path, "type"),
            kind,
            "source type",
            &[("kafka", SourceKind::Kafka)],
        )
        .unwrap_or(SourceKind::Kafka);
    }
    source.connection = r
        .required_string(&join(path, "connection"), fields.get("connection"))
        .unwrap_or_default();
    source.topic = r
        .required_string(&join(path, "topic"), fields.get("topic"))
        .unwrap_or_default();
    source.consumer_group = r
        .required_string(&join(path, "consumer_group"), fields.get("consumer_group"))
        .unwrap_or_default();
    read_source_options(r, path, &fields, &mut source);
    source
}

/// The optional keys of a source: `format`, `start_offset`, `archive`, `partitions`,
/// `event_types`.
fn read_source_options(
    r: &mut Reader<'_>,
    path: &str,
    fields: &super::yaml::Fields<'_>,
    source: &mut Source,
) {
    if let Some(format) = fields.get("format").filter(|f| !f.is_null()) {
        source.format = choice(
            r,
            &join(path, "format"),
            format,
            "format",
            &[("json", Format::Json)],
        )
        .unwrap_or(Format::Json);
    }
    if let Some(start) = fields.get("start_offset").filter(|f| !f.is_null()) {
        source.start_offset =
            read_start_offset(r, &join(path, "start_offset"), start).unwrap_or_default();
    }
    if let Some(archive) = fields.get("archive").filter(|a| !a.is_null()) {
        source.archive = read_archive(r, &join(path, "archive"), archive);
    }
    if let Some(n) = fields.get("partitions").filter(|n| !n.is_null()) {
        let at = join(path, "partitions");
        source.partitions = positive_u32(r, &at, n);
        if let Some(count) = source.partitions.filter(|&c| c > MAX_SOURCE_PARTITIONS) {
            r.error(
                &at,
                n.pos(),
                format!("{count} partitions: at most {MAX_SOURCE_PARTITIONS}"),
            );
            source.partitions = None;
        }
    }
    if let Some(types) = fields.get("event_types") {
        let types_path = join(path, "event_types");
        source.event_types = r.string_list(&types_path, types);
        let mut seen = BTreeSet::new();
        for (i, t) in source.event_types.iter().enumerate() {
            if !seen.insert(t.as_str()) {
                let item = index(&types_path, i);
                let pos = r.pos_of(&item);
                r.warning(&item, pos, format!("event type `{t}` is listed twice"));
            }
        }
    }
}

/// `archive: false | true | {enabled: bool, table: ns.name}`.
fn read_archive(r: &mut Reader<'_>, path: &str, f: Field<'_>) -> SourceArchive {
    const SHAPE: Shape<'static> = Shape {
        known: &["enabled", "table"],
        required: &[],
    };
    let mut archive = SourceArchive::default();
    if !matches!(f.node, Node::Mapping(_)) {
        archive.enabled = r.boolean(path, f).unwrap_or(true);
        return archive;
    }
    let Some(map) = r.mapping(path, f) else {
        return archive;
    };
    let fields = r.fields(path, f.key_pos, map, &SHAPE);
    if let Some(enabled) = fields.get("enabled").filter(|e| !e.is_null()) {
        archive.enabled = r.boolean(&join(path, "enabled"), enabled).unwrap_or(true);
    }
    if let Some(table) = fields.get("table").filter(|t| !t.is_null()) {
        let table_path = join(path, "table");
        if let Some(text) = r.string(&table_path, table) {
            match TableName::parse(&text) {
                Ok(t) => archive.table = Some(t),
                Err(message) => {
                    let pos = r.pos_of(&table_path);
                    r.error(&table_path, pos, message);
                }
            }
        }
    }
    archive
}

fn read_start_offset(r: &mut Reader<'_>, path: &str, f: Field<'_>) -> Option<StartOffset> {
    let text = r.string(path, f)?;
    match text.trim().to_ascii_lowercase().as_str() {
        "earliest" => Some(StartOffset::Earliest),
        "latest" => Some(StartOffset::Latest),
        other => match other.parse::<i64>() {
            Ok(n) if n >= 0 => Some(StartOffset::Offset(n)),
            _ => {
                r.error(
                    path,
                    f.pos(),
                    format!("bad start_offset `{text}`: expected earliest, latest or a non-negative offset"),
                );
                None
            }
        },
    }
}

fn read_transformations(r: &mut Reader<'_>, f: Field<'_>) -> Vec<Transformation> {
    let path = "transformations";
    let mut out = Vec::new();
    let Some(seq) = r.sequence(path, f) else {
        return out;
    };
    if seq.is_empty() {
        r.error(path, f.pos(), "declare at least one transformation");
    }
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (i, item) in items(seq).enumerate() {
        let item_path = index(path, i);
        let t = read_transformation(r, &item_path, item);
        if !t.name.is_empty() {
            if let Some(first) = names.get(&t.name) {
                let name_path = join(&item_path, "name");
                let pos = r.pos_of(&name_path);
                r.error(
                    &name_path,
                    pos,
                    format!(
                        "duplicate transformation name `{}` (also transformations[{first}])",
                        t.name
                    ),
                );
            } else {
                names.insert(t.name.clone(), i);
            }
        }
        out.push(t);
    }
    out
}

fn read_transformation(r: &mut Reader<'_>, path: &str, f: Field<'_>) -> Transformation {
    const SHAPE: Shape<'static> = Shape {
        known: &[
            "name",
            "type",
            "input",
            "key_field",
            "state_type",
            "fold_function",
            "fold_native",
            "on_error",
            "limits",
            "upcasters",
        ],
        required: &["name", "type", "input", "key_field"],
    };
    let mut t = Transformation {
        name: String::new(),
        kind: TransformationKind::EventFold,
        input: String::new(),
        key_field: String::new(),
        state_type: None,
        fold: FoldSource::Native {
            name: String::new(),
        },
        on_error: ErrorPolicy::default(),
        limits: FoldLimits::default(),
        upcasters: Vec::new(),
    };
    let Some(map) = r.mapping(path, f) else {
        return t;
    };
    let at = f.pos();
    r.remember(path, at);
    let fields = r.fields(path, at, map, &SHAPE);
    t.name = r
        .required_string(&join(path, "name"), fields.get("name"))
        .unwrap_or_default();
    if let Some(kind) = fields.get("type").filter(|k| !k.is_null()) {
        t.kind = choice(
            r,
            &join(path, "type"),
            kind,
            "transformation type",
            &[("event_fold", TransformationKind::EventFold)],
        )
        .unwrap_or(TransformationKind::EventFold);
    }
    t.input = r
        .required_string(&join(path, "input"), fields.get("input"))
        .unwrap_or_default();
    t.key_field = r
        .required_string(&join(path, "key_field"), fields.get("key_field"))
        .unwrap_or_default();
    t.state_type = fields
        .get("state_type")
        .and_then(|s| r.string(&join(path, "state_type"), s));
    t.fold = read_fold(
        r,
        path,
        at,
        fields.get("fold_function"),
        fields.get("fold_native"),
    );
    if let Some(policy) = fields.get("on_error").filter(|p| !p.is_null()) {
        t.on_error = choice(
            r,
            &join(path, "on_error"),
            policy,
            "on_error policy",
            &[
                ("dead_letter", ErrorPolicy::DeadLetter),
                ("fail", ErrorPolicy::Fail),
                ("skip", ErrorPolicy::Skip),
            ],
        )
        .unwrap_or_default();
    }
    if let Some(limits) = fields.get("limits").filter(|l| !l.is_null()) {
        t.limits = read_limits(r, &join(path, "limits"), limits);
    }
    if let Some(upcasters) = fields.get("upcasters").filter(|u| !u.is_null()) {
        t.upcasters = read_upcasters(r, &join(path, "upcasters"), upcasters);
    }
    t
}

/// `upcasters:` a list of `{event_type, from_version, function}`; one per (type, version).
fn read_upcasters(r: &mut Reader<'_>, path: &str, f: Field<'_>) -> Vec<Upcaster> {
    const SHAPE: Shape<'static> = Shape {
        known: &["event_type", "from_version", "function"],
        required: &["event_type", "from_version", "function"],
    };
    let mut out: Vec<Upcaster> = Vec::new();
    let Some(seq) = r.sequence(path, f) else {
        return out;
    };
    for (i, item) in items(seq).enumerate() {
        let item_path = index(path, i);
        let Some(map) = r.mapping(&item_path, item) else {
            continue;
        };
        let fields = r.fields(&item_path, item.pos(), map, &SHAPE);
        let event_type =
            r.required_string(&join(&item_path, "event_type"), fields.get("event_type"));
        let version_path = join(&item_path, "from_version");
        let from_version = fields
            .get("from_version")
            .and_then(|v| r.positive_u64(&version_path, v))
            .and_then(|v| i64::try_from(v).ok());
        let function_path = join(&item_path, "function");
        let source = fields.get("function").and_then(|v| {
            let text = r.raw_string(&function_path, v)?;
            let first = first_source_pos(v, &text);
            if let Some(first) = first {
                r.positions.insert(function_path.clone(), first);
            }
            Some((text, first.map_or(0, |p| p.line)))
        });
        let (Some(event_type), Some(from_version), Some((source, line))) =
            (event_type, from_version, source)
        else {
            continue;
        };
        if out
            .iter()
            .any(|u| u.event_type == event_type && u.from_version == from_version)
        {
            let pos = r.pos_of(&version_path);
            r.error(
                &version_path,
                pos,
                format!("a second upcaster of `{event_type}` version {from_version}"),
            );
            continue;
        }
        out.push(Upcaster {
            event_type,
            from_version,
            source,
            line,
        });
    }
    out
}

/// Exactly one of `fold_function` (Starlark source, kept as written) and `fold_native`.
fn read_fold(
    r: &mut Reader<'_>,
    path: &str,
    at: Option<Pos>,
    function: Option<Field<'_>>,
    native: Option<Field<'_>>,
) -> FoldSource {
    let placeholder = FoldSource::Native {
        name: String::new(),
    };
    match (function, native) {
        (None, None) => {
            r.error(
                path,
                at,
                "missing fold: set `fold_function` (Starlark source) or `fold_native` (the name of a built-in fold)",
            );
            placeholder
        }
        (Some(_), Some(n)) => {
            let native_path = join(path, "fold_native");
            r.error(
                &native_path,
                n.key_pos,
                "set either `fold_function` or `fold_native`, not both",
            );
            placeholder
        }
        (Some(f), None) => {
            let fold_path = join(path, "fold_function");
            let Some(source) = r.raw_string(&fold_path, f) else {
                if f.is_null() {
                    r.error(&fold_path, f.pos(), "must not be empty");
                }
                return placeholder;
            };
            if source.trim().is_empty() {
                r.error(&fold_path, f.pos(), "must not be empty");
                return placeholder;
            }
            let first = first_source_pos(f, &source);
            if let Some(first) = first {
                // Overrides the value's own position (its first non-blank line).
                r.positions.insert(fold_path.clone(), first);
            }
            FoldSource::Starlark {
                source,
                line: first.map_or(0, |p| p.line),
            }
        }
        (None, Some(n)) => {
            let native_path = join(path, "fold_native");
            match r.required_string(&native_path, Some(n)) {
                Some(name) => FoldSource::Native {
                    name: name.trim().to_string(),
                },
                None => {
                    if n.is_null() {
                        r.error(&native_path, n.pos(), "must not be empty");
                    }
                    placeholder
                }
            }
        }
    }
}

/// Where the fold source's own line 1 is in the file, and the column its text starts at.
///
/// For a block scalar (`fold_function: |`) marked-yaml places the value at its first
/// non-blank line; leading blank lines are part of the source, so step back over them (but
/// never onto the key's line). A value on the key's line (a quoted string) starts there.
fn first_source_pos(f: Field<'_>, source: &str) -> Option<Pos> {
    let value = f.pos()?;
    let key_line = f.key_pos.map_or(0, |k| k.line);
    if value.line <= key_line {
        return Some(value);
    }
    let blank_lines = source.chars().take_while(|c| *c == '\n').count();
    let line = value.line.saturating_sub(blank_lines).max(key_line + 1);
    Some(Pos {
        line,
        column: value.column,
    })
}

fn read_limits(r: &mut Reader<'_>, path: &str, f: Field<'_>) -> FoldLimits {
    const SHAPE: Shape<'static> = Shape {
        known: &["max_steps_per_event", "max_heap_bytes", "max_call_depth"],
        required: &[],
    };
    let mut limits = FoldLimits::default();
    let Some(map) = r.mapping(path, f) else {
        return limits;
    };
    let fields = r.fields(path, f.key_pos, map, &SHAPE);
    if let Some(v) = fields.get("max_steps_per_event").filter(|v| !v.is_null()) {
        limits.max_steps_per_event = r
            .positive_u64(&join(path, "max_steps_per_event"), v)
            .unwrap_or(limits.max_steps_per_event);
    }
    if let Some(v) = fields.get("max_heap_bytes").filter(|v| !v.is_null()) {
        limits.max_heap_bytes = r
            .positive_u64(&join(path, "max_heap_bytes"), v)
            .unwrap_or(limits.max_heap_bytes);
    }
    if let Some(v) = fields.get("max_call_depth").filter(|v| !v.is_null()) {
        let depth_path = join(path, "max_call_depth");
        if let Some(depth) = r.positive_u64(&depth_path, v) {
            match usize::try_from(depth) {
                Ok(depth) => limits.max_call_depth = depth,
                Err(_) => r.error(&depth_path, v.pos(), format!("{depth} is too large")),
            }
        }
    }
    for (name, value, cap) in [
        ("max_heap_bytes", limits.max_heap_bytes, 1 << 40),
        ("max_call_depth", limits.max_call_depth as u64, 10_000),
    ] {
        if value > cap {
            let p = join(path, name);
            let pos = r.pos_of(&p);
            r.error(&p, pos, format!("{value} is above the maximum {cap}"));
        }
    }
    limits
}

fn read_sinks(r: &mut Reader<'_>, f: Field<'_>) -> BTreeMap<String, Sink> {
    let path = "sinks";
    let mut out = BTreeMap::new();
    let Some(map) = r.mapping(path, f) else {
        return out;
    };
    if map.is_empty() {
        r.error(path, f.pos(), "declare at least one sink");
    }
    for (key, field) in entries(map) {
        let sink_path = join(path, key.as_str());
        r.remember_key(&sink_path, key);
        let sink = read_sink(r, &sink_path, key.as_str(), field);
        out.insert(key.as_str().to_string(), sink);
    }
    out
}

fn read_sink(r: &mut Reader<'_>, path: &str, name: &str, f: Field<'_>) -> Sink {
    const SHAPE: Shape<'static> = Shape {
        known: &["type", "table", "mode", "merge_keys", "input"],
        required: &["type", "table"],
    };
    let mut sink = Sink {
        name: name.to_string(),
        kind: SinkKind::Iceberg,
        table: TableName {
            namespace: Vec::new(),
            name: String::new(),
        },
        mode: SinkMode::default(),
        merge_keys: Vec::new(),
        input: None,
    };
    let Some(map) = r.mapping(path, f) else {
        return sink;
    };
    let fields = r.fields(path, f.key_pos, map, &SHAPE);
    if let Some(kind) = fields.get("type").filter(|k| !k.is_null()) {
        sink.kind = choice(
            r,
            &join(path, "type"),
            kind,
            "sink type",
            &[("iceberg", SinkKind::Iceberg)],
        )
        .unwrap_or(SinkKind::Iceberg);
    }
    let table_path = join(path, "table");
    if let Some(table) = r.required_string(&table_path, fields.get("table")) {
        match TableName::parse(&table) {
            Ok(t) => sink.table = t,
            Err(message) => {
                let pos = r.pos_of(&table_path);
                r.error(&table_path, pos, message);
            }
        }
    }
    if let Some(mode) = fields.get("mode").filter(|m| !m.is_null()) {
        sink.mode = choice(
            r,
            &join(path, "mode"),
            mode,
            "sink mode",
            &[
                ("merge_on_key", SinkMode::MergeOnKey),
                ("append", SinkMode::Append),
            ],
        )
        .unwrap_or_default();
    }
    if let Some(keys) = fields.get("merge_keys") {
        sink.merge_keys = r.string_list(&join(path, "merge_keys"), keys);
    }
    sink.input = fields
        .get("input")
        .and_then(|i| r.string(&join(path, "input"), i));
    sink
}

fn read_orchestration(r: &mut Reader<'_>, f: Field<'_>) -> Orchestration {
    const SHAPE: Shape<'static> = Shape {
        known: &["engine", "checkpoint_interval"],
        required: &[],
    };
    let path = "orchestration";
    let mut o = Orchestration::default();
    let Some(map) = r.mapping(path, f) else {
        return o;
    };
    let fields = r.fields(path, f.key_pos, map, &SHAPE);
    if let Some(engine) = fields.get("engine").filter(|e| !e.is_null()) {
        let engine_path = join(path, "engine");
        o.engine = choice(
            r,
            &engine_path,
            engine,
            "engine",
            &[("lambda", Engine::Lambda), ("flink", Engine::Flink)],
        )
        .unwrap_or_default();
        if o.engine == Engine::Flink {
            r.warning(
                &engine_path,
                engine.pos(),
                "engine `flink` is accepted for compatibility, but refold runs the pipeline on AWS Lambda",
            );
        }
    }
    if let Some(interval) = fields.get("checkpoint_interval").filter(|i| !i.is_null()) {
        o.checkpoint_interval_ms = read_duration(r, &join(path, "checkpoint_interval"), interval)
            .unwrap_or(o.checkpoint_interval_ms);
    }
    o
}

/// A duration greater than zero (an interval of zero would mean "continuously").
fn read_duration(r: &mut Reader<'_>, path: &str, f: Field<'_>) -> Option<u64> {
    let text = r.string(path, f)?;
    match parse_duration_ms(&text) {
        Ok(0) => {
            r.error(path, f.pos(), "must be greater than 0");
            None
        }
        Ok(ms) => Some(ms),
        Err(e) => {
            r.error(path, f.pos(), e.to_string());
            None
        }
    }
}

fn read_snapshots(r: &mut Reader<'_>, f: Field<'_>) -> SnapshotPolicy {
    const SHAPE: Shape<'static> = Shape {
        known: &[
            "interval",
            "max_snapshots",
            "store",
            "keep_recent",
            "orphan_grace",
        ],
        required: &[],
    };
    let path = "snapshots";
    let mut s = SnapshotPolicy::default();
    let Some(map) = r.mapping(path, f) else {
        return s;
    };
    let fields = r.fields(path, f.key_pos, map, &SHAPE);
    let duration = |r: &mut Reader<'_>, name: &str, default: u64| {
        fields
            .get(name)
            .filter(|v| !v.is_null())
            .and_then(|v| read_duration(r, &join(path, name), v))
            .unwrap_or(default)
    };
    s.interval_ms = duration(r, "interval", s.interval_ms);
    s.keep_recent_ms = duration(r, "keep_recent", s.keep_recent_ms);
    s.orphan_grace_ms = duration(r, "orphan_grace", s.orphan_grace_ms);
    if let Some(grace) = fields.get("orphan_grace").filter(|g| !g.is_null())
        && s.orphan_grace_ms < SnapshotPolicy::MIN_ORPHAN_GRACE_MS
    {
        r.error(
            &join(path, "orphan_grace"),
            grace.pos(),
            "must be at least 1h: a writer may hold files it has not committed yet for up to a \
             Lambda invocation (15 min), and deleting one would break its commit",
        );
    }
    if let Some(max) = fields.get("max_snapshots").filter(|m| !m.is_null()) {
        let max_path = join(path, "max_snapshots");
        if let Some(n) = r.positive_u64(&max_path, max) {
            match u32::try_from(n) {
                Ok(n) => s.max_snapshots = n,
                Err(_) => r.error(&max_path, max.pos(), format!("{n} is too large")),
            }
        }
    }
    if let Some(store) = fields.get("store").filter(|st| !st.is_null()) {
        s.store = choice(
            r,
            &join(path, "store"),
            store,
            "snapshot store",
            &[("iceberg", SnapshotStore::Iceberg)],
        )
        .unwrap_or_default();
    }
    s
}

/// A whole number greater than 0 that fits in `u32`.
fn positive_u32(r: &mut Reader<'_>, path: &str, f: Field<'_>) -> Option<u32> {
    let n = r.positive_u64(path, f)?;
    match u32::try_from(n) {
        Ok(n) => Some(n),
        Err(_) => {
            r.error(path, f.pos(), format!("{n} is too large"));
            None
        }
    }
}

fn read_compaction(r: &mut Reader<'_>, f: Field<'_>) -> CompactionPolicy {
    const SHAPE: Shape<'static> = Shape {
        known: &[
            "delete_files",
            "small_files",
            "small_file_bytes",
            "deleted_rows_percent",
            "target_file_bytes",
            "manifests",
        ],
        required: &[],
    };
    let path = "compaction";
    let mut c = CompactionPolicy::default();
    let Some(map) = r.mapping(path, f) else {
        return c;
    };
    let fields = r.fields(path, f.key_pos, map, &SHAPE);
    let field = |name: &str| fields.get(name).filter(|v| !v.is_null());
    let count = |r: &mut Reader<'_>, name: &str, default: u32| {
        field(name)
            .and_then(|v| positive_u32(r, &join(path, name), v))
            .unwrap_or(default)
    };
    c.delete_files = count(r, "delete_files", c.delete_files);
    c.small_files = count(r, "small_files", c.small_files);
    c.manifests = count(r, "manifests", c.manifests);
    c.deleted_rows_percent = count(r, "deleted_rows_percent", c.deleted_rows_percent);
    if let Some(v) = field("deleted_rows_percent")
        && c.deleted_rows_percent > 100
    {
        r.error(
            &join(path, "deleted_rows_percent"),
            v.pos(),
            "a percentage: 1 to 100",
        );
    }
    let bytes = |r: &mut Reader<'_>, name: &str, default: u64| {
        field(name)
            .and_then(|v| r.positive_u64(&join(path, name), v))
            .unwrap_or(default)
    };
    c.target_file_bytes = bytes(r, "target_file_bytes", c.target_file_bytes);
    c.small_file_bytes = bytes(r, "small_file_bytes", c.small_file_bytes);
    if let Some(v) = field("small_file_bytes")
        && c.small_file_bytes > c.target_file_bytes
    {
        r.error(
            &join(path, "small_file_bytes"),
            v.pos(),
            format!(
                "{} is larger than target_file_bytes {}: every compacted file would count as small",
                c.small_file_bytes, c.target_file_bytes
            ),
        );
    }
    c
}

fn read_state_types(r: &mut Reader<'_>, f: Field<'_>) -> BTreeMap<String, StateType> {
    const SHAPE: Shape<'static> = Shape {
        known: &["columns"],
        required: &["columns"],
    };
    let path = "state_types";
    let mut out = BTreeMap::new();
    let Some(map) = r.mapping(path, f) else {
        return out;
    };
    for (key, field) in entries(map) {
        let type_path = join(path, key.as_str());
        r.remember_key(&type_path, key);
        let mut state_type = StateType {
            name: key.as_str().to_string(),
            columns: Vec::new(),
        };
        if let Some(type_map) = r.mapping(&type_path, field) {
            let fields = r.fields(&type_path, field.key_pos, type_map, &SHAPE);
            if let Some(columns) = fields.get("columns").filter(|c| !c.is_null()) {
                state_type.columns = read_columns(r, &join(&type_path, "columns"), columns);
            }
        }
        out.insert(state_type.name.clone(), state_type);
    }
    out
}

fn read_columns(r: &mut Reader<'_>, path: &str, f: Field<'_>) -> Vec<Column> {
    const SHAPE: Shape<'static> = Shape {
        known: &["type", "required"],
        required: &["type"],
    };
    let mut out = Vec::new();
    let Some(map) = r.mapping(path, f) else {
        return out;
    };
    if map.is_empty() {
        r.error(path, f.pos(), "declare at least one column");
    }
    for (key, field) in entries(map) {
        let name = key.as_str();
        let column_path = join(path, name);
        let key_pos = r.remember_key(&column_path, key);
        check_column_name(r, &column_path, key_pos, name);
        let (ty_field, required) = match field.node {
            Node::Mapping(spec) => {
                let fields = r.fields(&column_path, key_pos, spec, &SHAPE);
                let required = fields
                    .get("required")
                    .filter(|v| !v.is_null())
                    .and_then(|v| r.boolean(&join(&column_path, "required"), v))
                    .unwrap_or(false);
                (
                    fields.get("type").map(|t| (join(&column_path, "type"), t)),
                    required,
                )
            }
            _ => (Some((column_path.clone(), field)), false),
        };
        let ty = match ty_field {
            Some((ty_path, t)) if t.is_null() => {
                r.error(&ty_path, t.pos(), "missing column type");
                None
            }
            Some((ty_path, t)) => choice(r, &ty_path, t, "column type", ColumnType::NAMES),
            None => None, // reported as a missing required field
        };
        out.push(Column {
            name: name.to_string(),
            ty: ty.unwrap_or(ColumnType::Json),
            required,
        });
    }
    out
}

/// Column names become Iceberg column names and Starlark dict keys; the conservative
/// identifier form is valid in every engine that reads the table without quoting.
fn check_column_name(r: &mut Reader<'_>, path: &str, pos: Option<Pos>, name: &str) {
    if !is_identifier(name) {
        r.error(path, pos, format!("bad column name `{name}`: expected lowercase letters, digits and `_`, not starting with a digit ([a-z_][a-z0-9_]*)"));
    } else if name == TENANT_COLUMN || BOOKKEEPING_COLUMNS.contains(&name) {
        r.error(
            path,
            pos,
            format!("column `{name}` is reserved: refold adds it to every state table"),
        );
    }
}

/// `[a-z_][a-z0-9_]*`.
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
