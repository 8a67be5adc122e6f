//! Limits on a pipeline's text and names, so an oversized or unusable value is refused with
//! its YAML path when the pipeline loads, not deep inside a Kafka or catalog client later.
//! Kafka's own rules for topic names; bounds on everything else.

use super::yaml::{Reader, index, join};
use super::{FoldSource, Pipeline};

/// Bytes of a pipeline file (or `REFOLD_PIPELINE_INLINE`); the seed is about 1.2 KB.
pub const MAX_PIPELINE_BYTES: usize = 1024 * 1024;
/// Bytes of one `fold_function` source.
pub const MAX_FOLD_SOURCE_BYTES: usize = 256 * 1024;
/// Characters of a Kafka topic name (Kafka's limit).
pub const MAX_TOPIC_CHARS: usize = 249;
/// Bytes of a consumer group id, a key field, a table namespace level or name.
pub const MAX_NAME_BYTES: usize = 255;
/// Partitions a source topic may declare (`sources.<name>.partitions`).
pub const MAX_SOURCE_PARTITIONS: u32 = 100_000;

/// Kafka's rule for topic names: `[a-zA-Z0-9._-]`, at most [`MAX_TOPIC_CHARS`], not `.`/`..`.
fn topic_problem(topic: &str) -> Option<String> {
    if topic.len() > MAX_TOPIC_CHARS {
        return Some(format!(
            "topic is {} characters, more than Kafka's {MAX_TOPIC_CHARS}",
            topic.len()
        ));
    }
    if topic == "." || topic == ".." {
        return Some(format!("`{topic}` is not a Kafka topic name"));
    }
    let bad = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')));
    bad.map(|c| format!("topic `{topic}` has `{c}`: Kafka topic names are [a-zA-Z0-9._-]"))
}

fn too_long(what: &str, value: &str, max: usize) -> Option<String> {
    (value.len() > max).then(|| format!("{what} is {} bytes, more than {max}", value.len()))
}

fn report(r: &mut Reader<'_>, path: &str, problem: Option<String>) {
    if let Some(message) = problem {
        let pos = r.pos_of(path);
        r.error(path, pos, message);
    }
}

pub(crate) fn check(r: &mut Reader<'_>, p: &Pipeline) {
    for (name, s) in &p.sources {
        let path = join("sources", name);
        if !s.topic.is_empty() {
            report(r, &join(&path, "topic"), topic_problem(&s.topic));
        }
        let group = join(&path, "consumer_group");
        let problem = too_long("consumer group", &s.consumer_group, MAX_NAME_BYTES);
        report(r, &group, problem);
    }
    for (i, t) in p.transformations.iter().enumerate() {
        let path = index("transformations", i);
        let key = too_long("key field", &t.key_field, MAX_NAME_BYTES);
        report(r, &join(&path, "key_field"), key);
        if let FoldSource::Starlark { source, .. } = &t.fold {
            let fold = too_long("fold_function", source, MAX_FOLD_SOURCE_BYTES);
            report(r, &join(&path, "fold_function"), fold);
        }
    }
    for (name, s) in &p.sinks {
        let path = join(&join("sinks", name), "table");
        let parts = s
            .table
            .namespace
            .iter()
            .chain(std::iter::once(&s.table.name));
        let long = parts
            .filter_map(|part| too_long("a table name part", part, MAX_NAME_BYTES))
            .next();
        report(r, &path, long);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::pipeline::parse;

    const SEED: &str = include_str!("../../../pipelines/order-events-pipeline.yaml");

    fn env(name: &str) -> Option<String> {
        (name == "KAFKA_CONNECTION").then(|| "b:9092".to_owned())
    }

    fn errors(text: &str) -> Vec<String> {
        parse(text, "p.yaml", &env)
            .problems
            .iter()
            .filter(|p| p.is_error())
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn the_seed_is_within_every_limit() {
        assert!(errors(SEED).is_empty(), "{:?}", errors(SEED));
    }

    #[test]
    fn topics_follow_kafka_rules() {
        assert_eq!(topic_problem("domain.orders.events"), None);
        assert!(topic_problem("a b").unwrap().contains("[a-zA-Z0-9._-]"));
        assert!(topic_problem("..").is_some());
        let long = "t".repeat(MAX_TOPIC_CHARS + 1);
        assert!(topic_problem(&long).unwrap().contains("249"));
        let text = SEED.replace("topic: domain.orders.events", "topic: domain/orders");
        let e = errors(&text);
        assert!(
            e.iter()
                .any(|p| p.contains("sources.order_events.topic") && p.contains("`/`")),
            "{e:?}"
        );
    }

    #[test]
    fn long_names_and_sources_are_refused_with_their_path() {
        let group = "g".repeat(MAX_NAME_BYTES + 1);
        let text = SEED.replace("order-projection-v1", &group);
        let e = errors(&text);
        assert!(
            e.iter()
                .any(|p| p.contains("consumer_group") && p.contains("more than 255")),
            "{e:?}"
        );
        let padding = format!("\n          # {}", "x".repeat(MAX_FOLD_SOURCE_BYTES));
        let text = SEED.replace(
            "def fold(state, event):",
            &format!("def fold(state, event):{padding}"),
        );
        let e = errors(&text);
        assert!(
            e.iter()
                .any(|p| p.contains("fold_function") && p.contains("more than")),
            "{e:?}"
        );
    }

    #[test]
    fn an_oversized_pipeline_is_refused_before_parsing() {
        let text = format!("{SEED}\n#{}", "x".repeat(MAX_PIPELINE_BYTES));
        let loaded = parse(&text, "big.yaml", &env);
        assert!(loaded.pipeline.is_none());
        let e = errors(&text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("more than the limit of 1048576"), "{e:?}");
    }
}
