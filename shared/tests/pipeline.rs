//! The pipeline definition, end to end: the seed file loads unchanged, and each way a file
//! can be wrong is reported with its YAML path, its line, and a message that says what is
//! wrong. Invalid files are the seed with one edit, so each line number below is the seed's
//! (the fixture is a verbatim copy of `seed/order-events-pipeline.yaml`).

use std::path::{Path, PathBuf};

use refold::pipeline::{
    ColumnType, CompactionPolicy, Engine, ErrorPolicy, FoldLimits, FoldSource, Format, Loaded,
    Problem, Severity, SinkMode, SnapshotPolicy, SnapshotStore, StartOffset, TableName, load,
    parse,
};

const FILE: &str = "order-events-pipeline.yaml";

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pipeline")
        .join(FILE)
}

fn seed() -> String {
    std::fs::read_to_string(fixture_path()).expect("fixture is readable")
}

fn env(name: &str) -> Option<String> {
    (name == "KAFKA_CONNECTION").then(|| "b-1.msk.example:9098".to_string())
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse_text(text: &str) -> Loaded {
    parse(text, FILE, &env)
}

/// The seed with `from` (which must occur exactly once) replaced by `to`.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "`{from}` must occur once in the text"
    );
    text.replacen(from, to, 1)
}

fn seed_with(from: &str, to: &str) -> String {
    edit(&seed(), from, to)
}

fn describe(loaded: &Loaded) -> String {
    loaded.problems.iter().map(|p| format!("  {p}\n")).collect()
}

/// The problem at `path` whose message contains `text`; fails listing all problems if none.
fn find<'a>(loaded: &'a Loaded, path: &str, text: &str) -> &'a Problem {
    loaded
        .problems
        .iter()
        .find(|p| p.path == path && p.message.contains(text))
        .unwrap_or_else(|| {
            panic!(
                "no problem at `{path}` containing `{text}`; problems:\n{}",
                describe(loaded)
            )
        })
}

fn assert_error(loaded: &Loaded, path: &str, line: usize, text: &str) {
    let p = find(loaded, path, text);
    assert_eq!(p.severity, Severity::Error, "{p}");
    assert_eq!(p.line, Some(line), "{p}");
    assert!(loaded.pipeline.is_none(), "an error means no pipeline");
}

fn assert_warning(loaded: &Loaded, path: &str, line: usize, text: &str) {
    let p = find(loaded, path, text);
    assert_eq!(p.severity, Severity::Warning, "{p}");
    assert_eq!(p.line, Some(line), "{p}");
}

/// The pipeline, or a failure listing the problems that prevented it.
fn pipeline_of(loaded: Loaded) -> refold::pipeline::Pipeline {
    let problems = describe(&loaded);
    loaded
        .pipeline
        .unwrap_or_else(|| panic!("the pipeline must load; problems:\n{problems}"))
}

fn error_count(loaded: &Loaded) -> usize {
    loaded.errors().count()
}

// ---------------------------------------------------------------------------------------
// The seed

#[test]
fn fixture_is_a_verbatim_copy_of_the_seed() {
    let seed_path = Path::new("/work/shared/seed").join(FILE);
    if !seed_path.exists() {
        eprintln!(
            "{} not present here; skipping the byte comparison",
            seed_path.display()
        );
        return;
    }
    let original = std::fs::read(&seed_path).expect("seed is readable");
    let copy = std::fs::read(fixture_path()).expect("fixture is readable");
    assert!(
        original == copy,
        "tests/fixtures/pipeline/{FILE} differs from {}",
        seed_path.display()
    );
}

#[test]
fn seed_loads_with_exactly_the_two_expected_warnings() {
    let loaded = parse_text(&seed());
    assert_eq!(error_count(&loaded), 0, "{}", describe(&loaded));
    assert_eq!(loaded.problems.len(), 2, "{}", describe(&loaded));
    assert_warning(
        &loaded,
        "transformations[0].state_type",
        26,
        "state type `order_aggregate` is not declared",
    );
    assert_warning(
        &loaded,
        "transformations[0].state_type",
        26,
        "one JSON column `state`",
    );
    assert_warning(
        &loaded,
        "orchestration.engine",
        41,
        "refold runs the pipeline on AWS Lambda",
    );
    // Sorted by line.
    assert_eq!(loaded.problems[0].path, "transformations[0].state_type");
    assert_eq!(loaded.problems[1].path, "orchestration.engine");
    assert_eq!(
        loaded.problems[1].to_string(),
        "order-events-pipeline.yaml:41:11: warning: orchestration.engine: engine `flink` is accepted for compatibility, but refold runs the pipeline on AWS Lambda"
    );
}

#[test]
fn seed_values_are_read_as_written() {
    let p = parse_text(&seed()).pipeline.expect("seed loads");
    assert_eq!(p.metadata.name, "order-events-pipeline");
    assert_eq!(p.metadata.version.as_deref(), Some("1.0.0"));
    assert_eq!(p.metadata.owner.as_deref(), Some("domain-team"));

    let source = &p.sources["order_events"];
    assert_eq!(source.name, "order_events");
    assert_eq!(source.connection, "b-1.msk.example:9098");
    assert_eq!(source.topic, "domain.orders.events");
    assert_eq!(source.consumer_group, "order-projection-v1");
    assert_eq!(source.format, Format::Json);
    assert_eq!(source.start_offset, StartOffset::Earliest);
    assert_eq!(
        source.event_types,
        [
            "OrderPlaced",
            "OrderConfirmed",
            "OrderShipped",
            "OrderDelivered",
            "OrderCancelled"
        ]
    );

    assert_eq!(p.transformations.len(), 1);
    let t = p.transformation();
    assert_eq!(t.name, "build_order_state");
    assert_eq!(t.input, "order_events");
    assert_eq!(t.key_field, "order_id");
    assert_eq!(t.state_type.as_deref(), Some("order_aggregate"));
    assert_eq!(t.on_error, ErrorPolicy::DeadLetter);
    assert_eq!(
        t.limits,
        FoldLimits {
            max_steps_per_event: 100_000,
            max_heap_bytes: 64 << 20,
            max_call_depth: 32
        }
    );
    let FoldSource::Starlark { source: code, line } = &t.fold else {
        panic!("a Starlark fold: {:?}", t.fold)
    };
    assert_eq!(*line, 28, "the fold's first line is line 28 of the file");
    assert!(
        code.starts_with("def fold(state, event):\n    if event.type == \"OrderPlaced\":\n"),
        "{code}"
    );
    assert!(
        code.contains("return {**state, \"status\": \"cancelled\"}"),
        "code is kept as written"
    );

    let sink = &p.sinks["order_view"];
    assert_eq!(
        sink.table,
        TableName {
            namespace: vec!["domain".into(), "orders".into()],
            name: "current_state".into()
        }
    );
    assert_eq!(sink.table.to_string(), "domain.orders.current_state");
    assert_eq!(sink.mode, SinkMode::MergeOnKey);
    assert_eq!(sink.merge_keys, ["order_id"]);
    assert_eq!(sink.input, None);

    assert_eq!(p.orchestration.engine, Engine::Flink);
    assert_eq!(p.orchestration.checkpoint_interval_ms, 30_000);
    assert!(p.state_types.is_empty());
    assert_eq!(
        p.snapshots,
        SnapshotPolicy {
            interval_ms: 3_600_000,
            max_snapshots: 24,
            store: SnapshotStore::Iceberg,
            keep_recent_ms: 3_600_000,
            orphan_grace_ms: 86_400_000,
        }
    );
    assert_eq!(p.compaction, CompactionPolicy::default());

    assert_eq!(p.source_of(t).name, "order_events");
    assert_eq!(p.sink_of(t).name, "order_view");
    assert!(p.state_type_of(t).is_none());
    assert!(p.accepts(source, "OrderShipped"));
    assert!(!p.accepts(source, "CustomerCreated"));
    assert!(
        !p.accepts(source, "orderplaced"),
        "event types match exactly"
    );
}

#[test]
fn load_reads_a_file_and_reports_io_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pipeline.yaml");
    // The process environment may not hold KAFKA_CONNECTION: use a default.
    let text = seed_with(
        "${KAFKA_CONNECTION}",
        "${REFOLD_TEST_SURELY_UNSET_VAR:-localhost:9092}",
    );
    std::fs::write(&path, text).expect("write");
    let loaded = load(&path).expect("readable");
    let p = loaded.pipeline.expect("loads");
    assert_eq!(p.sources["order_events"].connection, "localhost:9092");

    std::fs::write(&path, seed_with("input: order_events", "input: nope")).expect("write");
    let loaded = load(&path).expect("readable");
    assert!(
        loaded.problems.iter().all(|p| p.file == "pipeline.yaml"),
        "messages name the file, not its full path"
    );

    let err = load(&dir.path().join("missing.yaml")).expect_err("no such file");
    assert_eq!(err.kind(), refold::ErrorKind::Io);
    assert!(err.to_string().contains("missing.yaml"), "{err}");
}

#[test]
fn into_pipeline_lists_every_error() {
    let text = seed_with("input: order_events", "input: nope");
    let text = edit(
        &text,
        "checkpoint_interval: 30s",
        "checkpoint_interval: 30x",
    );
    let err = parse_text(&text).into_pipeline().expect_err("invalid");
    assert_eq!(err.kind(), refold::ErrorKind::InvalidInput);
    let message = err.to_string();
    assert!(
        message.contains("transformations[0].input: unknown source `nope`"),
        "{message}"
    );
    assert!(
        message.contains("orchestration.checkpoint_interval: bad duration `30x`"),
        "{message}"
    );
}

// ---------------------------------------------------------------------------------------
// Environment variables

#[test]
fn missing_variable_is_an_error_naming_it_and_the_path() {
    let loaded = parse(&seed(), FILE, &no_env);
    assert_error(
        &loaded,
        "sources.order_events.connection",
        10,
        "environment variable KAFKA_CONNECTION is not set (use ${KAFKA_CONNECTION:-default} for a default)",
    );
    assert_eq!(error_count(&loaded), 1, "{}", describe(&loaded));
    let p = find(
        &loaded,
        "sources.order_events.connection",
        "KAFKA_CONNECTION",
    );
    assert_eq!(
        p.to_string(),
        "order-events-pipeline.yaml:10:17: sources.order_events.connection: environment variable KAFKA_CONNECTION is not set (use ${KAFKA_CONNECTION:-default} for a default)"
    );
}

#[test]
fn variable_default_applies_only_when_unset() {
    let text = seed_with("${KAFKA_CONNECTION}", "${KAFKA_CONNECTION:-localhost:9092}");
    let unset = parse(&text, FILE, &no_env)
        .pipeline
        .expect("loads with the default");
    assert_eq!(unset.sources["order_events"].connection, "localhost:9092");
    let set = parse_text(&text).pipeline.expect("loads");
    assert_eq!(
        set.sources["order_events"].connection,
        "b-1.msk.example:9098"
    );
}

#[test]
fn variables_are_substituted_in_every_value_but_not_in_fold_code() {
    let text = seed_with(
        "topic: domain.orders.events",
        "topic: ${TOPIC_PREFIX:-domain}.orders.events",
    );
    let text = edit(
        &text,
        "consumer_group: order-projection-v1",
        "consumer_group: $${literal}-v1",
    );
    let text = edit(
        &text,
        "def fold(state, event):",
        "# costs $${X} and ${Y}\n      def fold(state, event):",
    );
    let loaded = parse_text(&text);
    let p = pipeline_of(loaded);
    let source = &p.sources["order_events"];
    assert_eq!(source.topic, "domain.orders.events");
    assert_eq!(
        source.consumer_group, "${literal}-v1",
        "`$${{` is a literal `${{`"
    );
    let FoldSource::Starlark { source: code, .. } = &p.transformation().fold else {
        panic!("starlark")
    };
    assert!(
        code.contains("# costs $${X} and ${Y}"),
        "fold code is left as written: {code}"
    );
}

#[test]
fn unterminated_variable_is_an_error() {
    let loaded = parse_text(&seed_with("topic: domain.orders.events", "topic: ${TOPIC"));
    assert_error(
        &loaded,
        "sources.order_events.topic",
        11,
        "unterminated `${`",
    );
}

// ---------------------------------------------------------------------------------------
// Required fields, unknown keys, syntax

#[test]
fn missing_required_fields_are_named_at_their_mapping() {
    let text = seed_with("    topic: domain.orders.events\n", "");
    let text = edit(&text, "    consumer_group: order-projection-v1\n", "");
    let loaded = parse_text(&text);
    assert_error(
        &loaded,
        "sources.order_events",
        8,
        "missing required fields `topic`, `consumer_group`",
    );
    assert_eq!(error_count(&loaded), 1, "{}", describe(&loaded));
}

#[test]
fn missing_sections_and_empty_values_are_errors() {
    let loaded = parse_text("metadata:\n  name:\n");
    assert_error(&loaded, "metadata", 1, "missing required field `name`");
    let top = find(
        &loaded,
        "",
        "missing required fields `sources`, `transformations`, `sinks`",
    );
    assert_eq!(top.line, None);
    assert_eq!(
        loaded.problems.last().map(|p| p.path.as_str()),
        Some(""),
        "unplaced problems sort last"
    );

    let loaded = parse_text("");
    find(
        &loaded,
        "",
        "missing required fields `metadata`, `sources`, `transformations`, `sinks`",
    );

    let loaded = parse_text(&seed_with("topic: domain.orders.events", "topic: \"\""));
    assert_error(
        &loaded,
        "sources.order_events.topic",
        11,
        "must not be empty",
    );
}

#[test]
fn unknown_keys_are_warnings_with_a_typo_hint() {
    let text = seed_with(
        "    topic: domain.orders.events\n",
        "    topic: domain.orders.events\n    replication: 3\n",
    );
    let text = edit(&text, "  owner: domain-team", "  ownr: domain-team");
    let loaded = parse_text(&text);
    assert_eq!(error_count(&loaded), 0, "{}", describe(&loaded));
    assert!(loaded.pipeline.is_some(), "warnings do not stop loading");
    assert_warning(
        &loaded,
        "metadata.ownr",
        6,
        "unknown key `ownr` is ignored (did you mean `owner`?)",
    );
    assert_warning(
        &loaded,
        "sources.order_events.replication",
        12,
        "unknown key `replication` is ignored (known: type,",
    );
}

#[test]
fn syntax_error_is_one_problem_at_the_marker() {
    let loaded = parse_text(&seed_with(
        "merge_keys: [order_id]",
        "merge_keys: [order_id",
    ));
    assert!(loaded.pipeline.is_none());
    assert_eq!(loaded.problems.len(), 1, "{}", describe(&loaded));
    let p = &loaded.problems[0];
    assert_eq!(p.severity, Severity::Error);
    assert_eq!(p.path, "");
    assert!(p.message.starts_with("YAML syntax error: "), "{p}");
    assert!(p.line.is_some_and(|l| l >= 39), "{p}");
    assert!(p.column.is_some(), "{p}");
}

#[test]
fn duplicate_keys_are_errors() {
    let loaded = parse_text(&seed_with(
        "    format: json\n",
        "    format: json\n    format: json\n",
    ));
    assert_eq!(loaded.problems.len(), 1, "{}", describe(&loaded));
    assert_eq!(loaded.problems[0].line, Some(14));
    assert!(
        loaded.problems[0]
            .message
            .contains("duplicate key `format` (first defined on line 13)")
    );
}

#[test]
fn wrong_node_kinds_are_errors() {
    let text = seed_with(
        "    event_types:\n      - OrderPlaced\n      - OrderConfirmed\n      - OrderShipped\n      - OrderDelivered\n      - OrderCancelled\n",
        "    event_types: OrderPlaced\n",
    );
    let loaded = parse_text(&text);
    assert_error(
        &loaded,
        "sources.order_events.event_types",
        15,
        "expected a list, found a string",
    );
}

// ---------------------------------------------------------------------------------------
// Sources

#[test]
fn source_type_and_format_must_be_known() {
    let text = seed_with("type: kafka", "type: kinesis");
    let text = edit(&text, "format: json", "format: avro");
    let loaded = parse_text(&text);
    assert_error(
        &loaded,
        "sources.order_events.type",
        9,
        "unknown source type `kinesis` (known: kafka)",
    );
    assert_error(
        &loaded,
        "sources.order_events.format",
        13,
        "unknown format `avro` (known: json)",
    );
}

#[test]
fn start_offset_is_earliest_latest_or_a_non_negative_offset() {
    let read = |value: &str| {
        parse_text(&seed_with(
            "start_offset: earliest",
            &format!("start_offset: {value}"),
        ))
    };
    let offset = |value: &str| {
        read(value)
            .pipeline
            .map(|p| p.sources["order_events"].start_offset)
    };
    assert_eq!(offset("latest"), Some(StartOffset::Latest));
    assert_eq!(offset("42"), Some(StartOffset::Offset(42)));
    assert_eq!(offset("0"), Some(StartOffset::Offset(0)));
    for bad in ["-5", "yesterday", "1.5"] {
        let loaded = read(bad);
        assert_error(
            &loaded,
            "sources.order_events.start_offset",
            14,
            &format!(
                "bad start_offset `{bad}`: expected earliest, latest or a non-negative offset"
            ),
        );
    }
}

#[test]
fn partitions_is_a_count_of_at_most_100000() {
    let read = |value: &str| {
        parse_text(&seed_with(
            "start_offset: earliest",
            &format!("start_offset: earliest\n    partitions: {value}"),
        ))
    };
    let count = |value: &str| {
        read(value)
            .pipeline
            .map(|p| p.sources["order_events"].partitions)
    };
    assert_eq!(count("12"), Some(Some(12)));
    assert_eq!(
        parse_text(&seed())
            .pipeline
            .map(|p| p.sources["order_events"].partitions),
        Some(None),
        "the seed declares none"
    );
    assert_error(
        &read("100001"),
        "sources.order_events.partitions",
        15,
        "100001 partitions: at most 100000",
    );
    for bad in ["0", "-1", "three"] {
        assert!(read(bad).pipeline.is_none(), "partitions: {bad} loaded");
        find(&read(bad), "sources.order_events.partitions", "");
    }
}

#[test]
fn duplicate_event_types_are_warned() {
    let loaded = parse_text(&seed_with(
        "      - OrderShipped\n",
        "      - OrderShipped\n      - OrderPlaced\n",
    ));
    assert!(loaded.pipeline.is_some());
    assert_warning(
        &loaded,
        "sources.order_events.event_types[3]",
        19,
        "event type `OrderPlaced` is listed twice",
    );
}

// ---------------------------------------------------------------------------------------
// Transformations

#[test]
fn transformation_input_must_name_a_source() {
    let loaded = parse_text(&seed_with("input: order_events", "input: ordr_events"));
    assert_error(
        &loaded,
        "transformations[0].input",
        24,
        "unknown source `ordr_events` (known: order_events)",
    );
    let p = find(&loaded, "transformations[0].input", "unknown source");
    assert_eq!(
        p.to_string(),
        "order-events-pipeline.yaml:24:12: transformations[0].input: unknown source `ordr_events` (known: order_events)"
    );
}

#[test]
fn transformation_type_must_be_event_fold() {
    let loaded = parse_text(&seed_with("type: event_fold", "type: stream_join"));
    assert_error(
        &loaded,
        "transformations[0].type",
        23,
        "unknown transformation type `stream_join` (known: event_fold)",
    );
    let loaded = parse_text(&seed_with("type: event_fold", "type: event_fodl"));
    assert_error(
        &loaded,
        "transformations[0].type",
        23,
        "did you mean `event_fold`?",
    );
}

#[test]
fn fold_function_must_compile_and_errors_point_into_the_file() {
    // Line 2 of the fold (line 29 of the file) loses its colon.
    let loaded = parse_text(&seed_with(
        "if event.type == \"OrderPlaced\":",
        "if event.type == \"OrderPlaced\"",
    ));
    let p = loaded
        .problems
        .iter()
        .find(|p| p.path == "transformations[0].fold_function")
        .unwrap_or_else(|| panic!("a fold problem; got:\n{}", describe(&loaded)));
    assert_eq!(p.severity, Severity::Error, "{p}");
    assert!(loaded.pipeline.is_none());
    assert_eq!(
        p.line,
        Some(29),
        "line 2 of the fold is line 29 of the file: {p}"
    );
    assert_eq!(p.column, Some(7), "the fold's indentation: {p}");
    assert!(p.message.contains("(line 2 of the fold)"), "{p}");
}

#[test]
fn leading_blank_lines_of_a_fold_block_count_as_its_lines() {
    // A blank first line: the fold's source starts on line 28 with an empty line, so its
    // line 3 (the broken `if`) is line 30 of the file.
    let text = seed_with("    fold_function: |\n", "    fold_function: |\n\n");
    let loaded = parse_text(&text);
    let p = pipeline_of(loaded);
    let FoldSource::Starlark { source, line } = &p.transformation().fold else {
        panic!("starlark")
    };
    assert_eq!(*line, 28);
    assert!(source.starts_with("\ndef fold"), "{source}");

    let text = edit(
        &text,
        "if event.type == \"OrderPlaced\":",
        "if event.type == \"OrderPlaced\"",
    );
    let loaded = parse_text(&text);
    assert_error(
        &loaded,
        "transformations[0].fold_function",
        30,
        "(line 3 of the fold)",
    );
}

#[test]
fn fold_function_without_fold_is_an_error() {
    let text = seed_with("def fold(state, event):", "def reduce(state, event):");
    let loaded = parse_text(&text);
    let p = find(&loaded, "transformations[0].fold_function", "fold");
    assert_eq!(p.severity, Severity::Error, "{p}");
    assert_eq!(p.line, Some(28), "{p}");
    assert!(p.message.contains("fold(state, event)"), "{p}");
}

#[test]
fn fold_native_selects_a_native_fold_by_name() {
    let seed = seed();
    let start = seed.find("    fold_function: |").expect("fold block");
    let end = seed.find("sinks:").expect("sinks");
    let text = format!("{}    fold_native: order\n{}", &seed[..start], &seed[end..]);
    let loaded = parse_text(&text);
    let p = pipeline_of(loaded);
    assert_eq!(
        p.transformation().fold,
        FoldSource::Native {
            name: "order".into()
        }
    );

    let both = format!("{}    fold_native: order\n{}", &seed[..end], &seed[end..]);
    let loaded = parse_text(&both);
    assert_error(
        &loaded,
        "transformations[0].fold_native",
        34,
        "set either `fold_function` or `fold_native`, not both",
    );

    let neither = format!("{}{}", &seed[..start], &seed[end..]);
    let loaded = parse_text(&neither);
    assert_error(
        &loaded,
        "transformations[0]",
        22,
        "missing fold: set `fold_function`",
    );
}

#[test]
fn on_error_and_limits_are_read_and_checked() {
    let extra = "    on_error: skip\n    limits:\n      max_steps_per_event: 5000\n      max_call_depth: 8\n    fold_function: |";
    let loaded = parse_text(&seed_with("    fold_function: |", extra));
    let p = pipeline_of(loaded);
    let t = p.transformation();
    assert_eq!(t.on_error, ErrorPolicy::Skip);
    assert_eq!(
        t.limits,
        FoldLimits {
            max_steps_per_event: 5000,
            max_heap_bytes: 64 << 20,
            max_call_depth: 8
        }
    );
    let FoldSource::Starlark { line, .. } = t.fold else {
        panic!("starlark")
    };
    assert_eq!(line, 32, "the fold moved down four lines");

    let extra = "    on_error: retry\n    limits:\n      max_heap_bytes: 0\n      max_steps_per_event: lots\n    fold_function: |";
    let loaded = parse_text(&seed_with("    fold_function: |", extra));
    assert_error(
        &loaded,
        "transformations[0].on_error",
        27,
        "unknown on_error policy `retry` (known: dead_letter, fail, skip)",
    );
    assert_error(
        &loaded,
        "transformations[0].limits.max_heap_bytes",
        29,
        "must be greater than 0",
    );
    assert_error(
        &loaded,
        "transformations[0].limits.max_steps_per_event",
        30,
        "expected a whole number greater than 0, found `lots`",
    );
}

// ---------------------------------------------------------------------------------------
// Sinks

#[test]
fn sink_type_must_be_iceberg() {
    let loaded = parse_text(&seed_with("type: iceberg", "type: delta"));
    assert_error(
        &loaded,
        "sinks.order_view.type",
        36,
        "unknown sink type `delta` (known: iceberg)",
    );
    let loaded = parse_text(&seed_with("type: iceberg", "type: icebreg"));
    assert_error(
        &loaded,
        "sinks.order_view.type",
        36,
        "unknown sink type `icebreg` (did you mean `iceberg`?)",
    );
}

#[test]
fn sink_mode_is_merge_on_key_append_is_refused() {
    let loaded = parse_text(&seed_with("mode: merge_on_key", "mode: upsert"));
    assert_error(
        &loaded,
        "sinks.order_view.mode",
        38,
        "unknown sink mode `upsert` (known: merge_on_key, append)",
    );

    // Append is read (so the message can name it) but refused: a fold keeps one row per key.
    let loaded = parse_text(&seed_with("mode: merge_on_key", "mode: append"));
    assert_error(
        &loaded,
        "sinks.order_view.mode",
        38,
        "mode append is not supported yet: an event_fold sink keeps one row per key, use mode: merge_on_key",
    );
}

#[test]
fn merge_keys_must_be_the_key_field() {
    let loaded = parse_text(&seed_with(
        "merge_keys: [order_id]",
        "merge_keys: [customer_id]",
    ));
    assert_error(
        &loaded,
        "sinks.order_view.merge_keys",
        39,
        "merge_keys [customer_id] do not match key_field order_id",
    );

    let loaded = parse_text(&seed_with(
        "merge_keys: [order_id]",
        "merge_keys: [order_id, tenant]",
    ));
    assert_error(
        &loaded,
        "sinks.order_view.merge_keys",
        39,
        "merge_keys [order_id, tenant] do not match key_field order_id",
    );

    let loaded = parse_text(&seed_with("    merge_keys: [order_id]\n", ""));
    assert_error(
        &loaded,
        "sinks.order_view.merge_keys",
        35,
        "mode merge_on_key needs `merge_keys: [order_id]`",
    );
}

#[test]
fn table_names_need_a_namespace() {
    let loaded = parse_text(&seed_with(
        "table: domain.orders.current_state",
        "table: current_state",
    ));
    assert_error(
        &loaded,
        "sinks.order_view.table",
        37,
        "bad table name `current_state`: expected `namespace.table`",
    );
}

#[test]
fn sink_input_must_name_a_transformation() {
    let loaded = parse_text(&seed_with(
        "    mode: merge_on_key\n",
        "    mode: merge_on_key\n    input: build_state\n",
    ));
    assert_error(
        &loaded,
        "sinks.order_view.input",
        39,
        "unknown transformation `build_state` (known: build_order_state)",
    );

    let loaded = parse_text(&seed_with(
        "    mode: merge_on_key\n",
        "    mode: merge_on_key\n    input: build_order_state\n",
    ));
    let p = pipeline_of(loaded);
    assert_eq!(
        p.sinks["order_view"].input.as_deref(),
        Some("build_order_state")
    );
    assert_eq!(p.sink_of(p.transformation()).name, "order_view");
}

// ---------------------------------------------------------------------------------------
// Orchestration, durations, snapshots

#[test]
fn bad_duration_is_explained() {
    let loaded = parse_text(&seed_with(
        "checkpoint_interval: 30s",
        "checkpoint_interval: 30x",
    ));
    assert_error(
        &loaded,
        "orchestration.checkpoint_interval",
        42,
        "bad duration `30x`: expected a number with a unit (ms, s, m, h, d), e.g. 30s",
    );
    let p = find(&loaded, "orchestration.checkpoint_interval", "bad duration");
    assert!(
        p.to_string().ends_with(
            "orchestration.checkpoint_interval: bad duration `30x`: expected a number with a unit (ms, s, m, h, d), e.g. 30s"
        ),
        "{p}"
    );
    let loaded = parse_text(&seed_with(
        "checkpoint_interval: 30s",
        "checkpoint_interval: 0s",
    ));
    assert_error(
        &loaded,
        "orchestration.checkpoint_interval",
        42,
        "must be greater than 0",
    );
}

#[test]
fn durations_combine_units() {
    let loaded = parse_text(&seed_with(
        "checkpoint_interval: 30s",
        "checkpoint_interval: 1h30m",
    ));
    let p = loaded.pipeline.expect("loads");
    assert_eq!(p.orchestration.checkpoint_interval_ms, 5_400_000);
    let loaded = parse_text(&seed_with(
        "checkpoint_interval: 30s",
        "checkpoint_interval: 500ms",
    ));
    assert_eq!(
        loaded
            .pipeline
            .map(|p| p.orchestration.checkpoint_interval_ms),
        Some(500)
    );
}

#[test]
fn engine_lambda_is_silent_and_unknown_engines_are_errors() {
    let loaded = parse_text(&seed_with("engine: flink", "engine: lambda"));
    assert_eq!(
        loaded.problems.len(),
        1,
        "only the state_type warning: {}",
        describe(&loaded)
    );
    assert_eq!(
        loaded.pipeline.map(|p| p.orchestration.engine),
        Some(Engine::Lambda)
    );

    let loaded = parse_text(&seed_with("engine: flink", "engine: spark"));
    assert_error(
        &loaded,
        "orchestration.engine",
        41,
        "unknown engine `spark` (known: lambda, flink)",
    );
}

#[test]
fn orchestration_is_optional() {
    let loaded = parse_text(&seed_with(
        "orchestration:\n  engine: flink\n  checkpoint_interval: 30s\n",
        "",
    ));
    let p = loaded.pipeline.expect("loads");
    assert_eq!(p.orchestration.engine, Engine::Lambda);
    assert_eq!(p.orchestration.checkpoint_interval_ms, 30_000);
}

#[test]
fn snapshots_section_is_read_and_checked() {
    let mut text = seed();
    text.push_str("snapshots:\n  interval: 2h\n  max_snapshots: 48\n  store: iceberg\n");
    let p = parse_text(&text).pipeline.expect("loads");
    assert_eq!(
        p.snapshots,
        SnapshotPolicy {
            interval_ms: 7_200_000,
            max_snapshots: 48,
            store: SnapshotStore::Iceberg,
            ..SnapshotPolicy::default()
        }
    );

    let mut text = seed();
    text.push_str("snapshots:\n  interval: hourly\n  max_snapshots: 0\n  store: s3\n");
    let loaded = parse_text(&text);
    assert_error(&loaded, "snapshots.interval", 44, "bad duration `hourly`");
    assert_error(
        &loaded,
        "snapshots.max_snapshots",
        45,
        "must be greater than 0",
    );
    assert_error(
        &loaded,
        "snapshots.store",
        46,
        "unknown snapshot store `s3` (known: iceberg)",
    );
}

#[test]
fn snapshot_retention_and_compaction_are_read_and_checked() {
    let mut text = seed();
    text.push_str(
        "snapshots:\n  keep_recent: 30m\n  orphan_grace: 3d\ncompaction:\n  delete_files: 4\n  \
         small_files: 3\n  small_file_bytes: 1_000\n  deleted_rows_percent: 35\n  \
         target_file_bytes: 2_000\n  manifests: 16\n",
    );
    let p = parse_text(&text).pipeline.expect("loads");
    assert_eq!(p.snapshots.keep_recent_ms, 1_800_000);
    assert_eq!(p.snapshots.orphan_grace_ms, 3 * 86_400_000);
    assert_eq!(p.snapshots.interval_ms, 3_600_000, "defaults stay");
    assert_eq!(
        p.compaction,
        CompactionPolicy {
            delete_files: 4,
            small_files: 3,
            small_file_bytes: 1_000,
            deleted_rows_percent: 35,
            target_file_bytes: 2_000,
            manifests: 16,
        }
    );

    let mut text = seed();
    text.push_str(
        "snapshots:\n  orphan_grace: 10m\ncompaction:\n  delete_files: 0\n  \
         deleted_rows_percent: 101\n  small_file_bytes: 3000\n  target_file_bytes: 2000\n",
    );
    let loaded = parse_text(&text);
    assert_error(&loaded, "snapshots.orphan_grace", 44, "must be at least 1h");
    assert_error(
        &loaded,
        "compaction.delete_files",
        46,
        "must be greater than 0",
    );
    assert_error(
        &loaded,
        "compaction.deleted_rows_percent",
        47,
        "a percentage: 1 to 100",
    );
    assert_error(
        &loaded,
        "compaction.small_file_bytes",
        48,
        "3000 is larger than target_file_bytes 2000",
    );
}

// ---------------------------------------------------------------------------------------
// State types

const ORDER_AGGREGATE: &str = "state_types:
  order_aggregate:
    columns:
      status: string
      amount: {type: double, required: true}
      placed_at: timestamp
      items: int
      gift: bool
      extra: json
";

#[test]
fn declared_state_type_gives_typed_columns() {
    let text = format!("{}{ORDER_AGGREGATE}", seed());
    let loaded = parse_text(&text);
    assert_eq!(
        loaded.problems.len(),
        1,
        "only the flink warning: {}",
        describe(&loaded)
    );
    let p = loaded.pipeline.expect("loads");
    let st = p.state_type_of(p.transformation()).expect("declared");
    let columns: Vec<_> = st
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.ty, c.required))
        .collect();
    assert_eq!(
        columns,
        [
            ("status", ColumnType::String, false),
            ("amount", ColumnType::Double, true),
            ("placed_at", ColumnType::Timestamp, false),
            ("items", ColumnType::Long, false),
            ("gift", ColumnType::Boolean, false),
            ("extra", ColumnType::Json, false),
        ]
    );
}

#[test]
fn state_type_columns_are_checked() {
    let text = format!(
        "{}state_types:
  order_aggregate:
    columns:
      order_id: string
      tenant_id: string
      last_offset: long
      Bad-Name: string
      status: strng
      amount: {{required: true}}
",
        seed()
    );
    let loaded = parse_text(&text);
    assert_error(
        &loaded,
        "state_types.order_aggregate.columns.order_id",
        46,
        "collides with the key column",
    );
    assert_error(
        &loaded,
        "state_types.order_aggregate.columns.tenant_id",
        47,
        "column `tenant_id` is reserved",
    );
    assert_error(
        &loaded,
        "state_types.order_aggregate.columns.last_offset",
        48,
        "column `last_offset` is reserved",
    );
    assert_error(
        &loaded,
        "state_types.order_aggregate.columns.Bad-Name",
        49,
        "bad column name `Bad-Name`",
    );
    assert_error(
        &loaded,
        "state_types.order_aggregate.columns.status",
        50,
        "unknown column type `strng` (did you mean `string`?)",
    );
    assert_error(
        &loaded,
        "state_types.order_aggregate.columns.amount",
        51,
        "missing required field `type`",
    );
}

// ---------------------------------------------------------------------------------------
// All at once

#[test]
fn every_problem_is_reported_in_line_order() {
    let text = seed_with("input: order_events", "input: ordr_events");
    let text = edit(&text, "type: iceberg", "type: delta");
    let text = edit(&text, "merge_keys: [order_id]", "merge_keys: [id]");
    let text = edit(
        &text,
        "checkpoint_interval: 30s",
        "checkpoint_interval: 30x",
    );
    let text = edit(&text, "format: json", "format: xml");
    let loaded = parse(&text, FILE, &no_env);
    let expected = [
        (
            "sources.order_events.connection",
            10,
            "KAFKA_CONNECTION is not set",
        ),
        ("sources.order_events.format", 13, "unknown format `xml`"),
        (
            "transformations[0].input",
            24,
            "unknown source `ordr_events`",
        ),
        ("sinks.order_view.type", 36, "unknown sink type `delta`"),
        (
            "sinks.order_view.merge_keys",
            39,
            "merge_keys [id] do not match key_field order_id",
        ),
        (
            "orchestration.checkpoint_interval",
            42,
            "bad duration `30x`",
        ),
    ];
    for (path, line, text) in expected {
        assert_error(&loaded, path, line, text);
    }
    assert_eq!(
        error_count(&loaded),
        expected.len(),
        "{}",
        describe(&loaded)
    );
    let lines: Vec<usize> = loaded
        .problems
        .iter()
        .map(|p| p.line.unwrap_or(usize::MAX))
        .collect();
    assert!(lines.is_sorted(), "sorted by line: {lines:?}");
    assert_eq!(loaded.warnings().count(), 2, "{}", describe(&loaded));
}
