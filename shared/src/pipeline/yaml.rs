//! Walking a `marked_yaml::Node` tree with YAML paths and line numbers.
//!
//! serde would stop at the first error and lose the position of everything it did not
//! complain about; a hand walk keeps going, reports every problem at its own line, and
//! remembers where each value was (`positions`) so cross-field checks that run later can
//! still point at the right line.

use std::collections::BTreeMap;

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode, MarkedSequenceNode};
use marked_yaml::{LoaderOptions, Node};

use super::env::substitute;
use super::problem::{Pos, Problem};

/// Parses the text into a YAML tree, or the one problem that stops it.
///
/// Duplicate keys are errors (silently taking the last one hides mistakes); scalars keep
/// their text as written so `version: 1.10` is not read as a number.
pub(crate) fn parse_tree(text: &str, file: &str) -> Result<Node, Problem> {
    let options = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true);
    marked_yaml::parse_yaml_with_options(0, text, options).map_err(|e| load_problem(&e, file))
}

fn load_problem(e: &marked_yaml::LoadError, file: &str) -> Problem {
    use marked_yaml::LoadError as E;
    let at = |m: &marked_yaml::Marker| {
        Some(Pos {
            line: m.line(),
            column: m.column(),
        })
    };
    match e {
        E::TopLevelMustBeMapping(m) | E::TopLevelMustBeSequence(m) => Problem::error(
            file,
            "",
            at(m),
            "the pipeline file must be a mapping with `metadata`, `sources`, `transformations` and `sinks`",
        ),
        E::UnexpectedAnchor(m) => Problem::error(
            file,
            "",
            at(m),
            "YAML anchors and aliases are not supported",
        ),
        E::UnexpectedTag(m) => {
            Problem::error(file, "", at(m), "YAML tags (`!x`) are not supported")
        }
        E::MappingKeyMustBeScalar(m) => {
            Problem::error(file, "", at(m), "mapping keys must be plain strings")
        }
        E::ScanError(m, scan) => Problem::error(
            file,
            "",
            at(m),
            format!("YAML syntax error: {}", scan.info()),
        ),
        E::DuplicateKey(inner) => {
            let first = inner.prev_key.span().start().map(|m| m.line()).unwrap_or(0);
            Problem::error(
                file,
                "",
                inner.key.span().start().and_then(at),
                format!(
                    "duplicate key `{}` (first defined on line {first})",
                    inner.key.as_str()
                ),
            )
        }
    }
}

/// Appends `.key` to a YAML path (no dot at the root).
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Appends `[index]` to a YAML path.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

fn scalar_pos(s: &MarkedScalarNode) -> Option<Pos> {
    s.span().start().map(|m| Pos {
        line: m.line(),
        column: m.column(),
    })
}

/// A plain `~`, `null` or nothing at all: YAML's null, which we treat as "not given".
fn is_null(s: &MarkedScalarNode) -> bool {
    s.may_coerce() && matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL")
}

fn kind_name(node: &Node) -> &'static str {
    match node {
        Node::Scalar(s) if is_null(s) => "nothing",
        Node::Scalar(_) => "a string",
        Node::Mapping(_) => "a mapping",
        Node::Sequence(_) => "a list",
    }
}

/// One value found under a key or at a list index, with its path and where it is.
#[derive(Clone, Copy)]
pub(crate) struct Field<'n> {
    pub node: &'n Node,
    /// Where the key is (or the list item); also where an empty value is reported.
    pub key_pos: Option<Pos>,
}

impl Field<'_> {
    /// Where the value is: the scalar itself, the first key of a mapping, the first item of a
    /// list; the key when the value is empty or its own position is not reliable.
    ///
    /// marked-yaml puts a block mapping's start at its first `:`, and an empty value at the
    /// next token (often the next line), so neither is used.
    pub fn pos(&self) -> Option<Pos> {
        match self.node {
            Node::Scalar(s) if is_null(s) => self.key_pos,
            Node::Scalar(s) => scalar_pos(s).or(self.key_pos),
            Node::Mapping(m) => m.keys().next().and_then(scalar_pos).or(self.key_pos),
            Node::Sequence(q) => match q.first() {
                Some(first) => Field {
                    node: first,
                    key_pos: None,
                }
                .pos()
                .or(self.key_pos),
                None => self.key_pos,
            },
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.node, Node::Scalar(s) if is_null(s))
    }
}

/// The keys of one mapping, after checking them against what that mapping may hold.
pub(crate) struct Fields<'n> {
    map: &'n MarkedMappingNode,
}

impl<'n> Fields<'n> {
    pub fn get(&self, key: &str) -> Option<Field<'n>> {
        self.map.get_key_value(key).map(|(k, node)| Field {
            node,
            key_pos: scalar_pos(k),
        })
    }
}

/// What a mapping may and must contain.
pub(crate) struct Shape<'a> {
    pub known: &'a [&'a str],
    pub required: &'a [&'a str],
}

/// Walks the tree, collecting problems and the position of every value it reads.
pub(crate) struct Reader<'e> {
    pub file: String,
    env: &'e dyn Fn(&str) -> Option<String>,
    pub problems: Vec<Problem>,
    /// YAML path -> where its value is, for checks that run after reading.
    pub positions: BTreeMap<String, Pos>,
}

impl<'e> Reader<'e> {
    pub fn new(file: &str, env: &'e dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            file: file.to_string(),
            env,
            problems: Vec::new(),
            positions: BTreeMap::new(),
        }
    }

    pub fn error(&mut self, path: &str, pos: Option<Pos>, message: impl Into<String>) {
        let p = Problem::error(&self.file, path, pos, message);
        self.problems.push(p);
    }

    pub fn warning(&mut self, path: &str, pos: Option<Pos>, message: impl Into<String>) {
        let p = Problem::warning(&self.file, path, pos, message);
        self.problems.push(p);
    }

    /// Where a previously read path was, for later checks.
    pub fn pos_of(&self, path: &str) -> Option<Pos> {
        self.positions.get(path).copied()
    }

    /// Records where `path` is; the first record wins, so a named mapping (`sinks.x`) stays
    /// at its key rather than moving to its first field.
    pub fn remember(&mut self, path: &str, pos: Option<Pos>) {
        if let Some(pos) = pos {
            self.positions.entry(path.to_string()).or_insert(pos);
        }
    }

    /// The field as a mapping; an error if it is something else.
    pub fn mapping<'n>(&mut self, path: &str, f: Field<'n>) -> Option<&'n MarkedMappingNode> {
        self.remember(path, f.pos());
        match f.node {
            Node::Mapping(m) => Some(m),
            other => {
                self.error(
                    path,
                    f.pos(),
                    format!("expected a mapping, found {}", kind_name(other)),
                );
                None
            }
        }
    }

    /// The field as a list; an error if it is something else.
    pub fn sequence<'n>(&mut self, path: &str, f: Field<'n>) -> Option<&'n MarkedSequenceNode> {
        self.remember(path, f.pos());
        match f.node {
            Node::Sequence(q) => Some(q),
            other => {
                self.error(
                    path,
                    f.pos(),
                    format!("expected a list, found {}", kind_name(other)),
                );
                None
            }
        }
    }

    /// Checks a mapping's keys against `shape`: unknown keys are warnings (with the closest
    /// known key as a typo hint), missing required keys one error naming them all.
    pub fn fields<'n>(
        &mut self,
        path: &str,
        at: Option<Pos>,
        map: &'n MarkedMappingNode,
        shape: &Shape<'_>,
    ) -> Fields<'n> {
        for key in map.keys() {
            let name = key.as_str();
            if !shape.known.contains(&name) {
                let hint = match closest(name, shape.known) {
                    Some(known) => format!(" (did you mean `{known}`?)"),
                    None => format!(" (known: {})", shape.known.join(", ")),
                };
                self.warning(
                    &join(path, name),
                    scalar_pos(key),
                    format!("unknown key `{name}` is ignored{hint}"),
                );
            }
        }
        let missing: Vec<&str> = shape
            .required
            .iter()
            .copied()
            .filter(|k| {
                map.get_node(k)
                    .is_none_or(|n| matches!(n, Node::Scalar(s) if is_null(s)))
            })
            .collect();
        if !missing.is_empty() {
            let list = missing
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let plural = if missing.len() == 1 { "" } else { "s" };
            self.error(path, at, format!("missing required field{plural} {list}"));
        }
        Fields { map }
    }

    /// The field as text, `${VAR}` substituted; None (after an error) if it is not a scalar
    /// or a variable is missing, and None without an error if it is null.
    pub fn string(&mut self, path: &str, f: Field<'_>) -> Option<String> {
        let raw = self.scalar(path, f)?;
        match substitute(raw.as_str(), self.env) {
            Ok(value) => Some(value),
            Err(errors) => {
                for e in errors {
                    self.error(path, f.pos(), e.to_string());
                }
                None
            }
        }
    }

    /// The field's text exactly as written, without substitution (code, where `${` may be
    /// part of the language).
    pub fn raw_string(&mut self, path: &str, f: Field<'_>) -> Option<String> {
        self.scalar(path, f).map(|s| s.as_str().to_string())
    }

    fn scalar<'n>(&mut self, path: &str, f: Field<'n>) -> Option<&'n MarkedScalarNode> {
        self.remember(path, f.pos());
        match f.node {
            Node::Scalar(s) if is_null(s) => None,
            Node::Scalar(s) => Some(s),
            other => {
                self.error(
                    path,
                    f.pos(),
                    format!("expected a string, found {}", kind_name(other)),
                );
                None
            }
        }
    }

    /// A required text value: an error if empty (after substitution).
    pub fn required_string(&mut self, path: &str, f: Option<Field<'_>>) -> Option<String> {
        let f = f?; // a missing key was already reported by `fields`
        let value = self.string(path, f)?;
        if value.trim().is_empty() {
            self.error(path, f.pos(), "must not be empty");
            return None;
        }
        Some(value)
    }

    /// A list of non-empty strings, each substituted, positions remembered per item.
    pub fn string_list(&mut self, path: &str, f: Field<'_>) -> Vec<String> {
        if f.is_null() {
            self.remember(path, f.pos());
            return Vec::new();
        }
        let Some(items) = self.sequence(path, f) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, node) in items.iter().enumerate() {
            let item_path = index(path, i);
            let item = Field {
                node,
                key_pos: f.key_pos,
            };
            match self.string(&item_path, item) {
                Some(s) if !s.trim().is_empty() => out.push(s),
                Some(_) | None if self.has_error_at(&item_path) => {}
                _ => self.error(&item_path, item.pos(), "must not be empty"),
            }
        }
        out
    }

    fn has_error_at(&self, path: &str) -> bool {
        self.problems.iter().any(|p| p.is_error() && p.path == path)
    }

    /// A whole number greater than zero (limits, counts): zero would disable the thing the
    /// limit protects, which is never what a user means.
    pub fn positive_u64(&mut self, path: &str, f: Field<'_>) -> Option<u64> {
        let text = self.string(path, f)?;
        match text.trim().replace('_', "").parse::<u64>() {
            Ok(n) if n > 0 => Some(n),
            Ok(_) => {
                self.error(path, f.pos(), "must be greater than 0");
                None
            }
            Err(_) => {
                self.error(
                    path,
                    f.pos(),
                    format!("expected a whole number greater than 0, found `{text}`"),
                );
                None
            }
        }
    }

    /// `true` or `false` (also `yes`/`no`, as YAML 1.1 users write them).
    pub fn boolean(&mut self, path: &str, f: Field<'_>) -> Option<bool> {
        let text = self.string(path, f)?;
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Some(true),
            "false" | "no" | "off" => Some(false),
            _ => {
                self.error(
                    path,
                    f.pos(),
                    format!("expected true or false, found `{text}`"),
                );
                None
            }
        }
    }

    /// Records where a mapping entry's key is (sources, sinks, state types are named by key).
    pub fn remember_key(&mut self, path: &str, key: &MarkedScalarNode) -> Option<Pos> {
        let pos = scalar_pos(key);
        self.remember(path, pos);
        pos
    }
}

/// Entries of a mapping as (key, field), in file order.
pub(crate) fn entries(
    map: &MarkedMappingNode,
) -> impl Iterator<Item = (&MarkedScalarNode, Field<'_>)> {
    map.iter().map(|(k, node)| {
        (
            k,
            Field {
                node,
                key_pos: scalar_pos(k),
            },
        )
    })
}

/// Items of a list as fields, in file order.
pub(crate) fn items(seq: &MarkedSequenceNode) -> impl Iterator<Item = Field<'_>> {
    seq.iter().map(|node| Field {
        node,
        key_pos: None,
    })
}

/// The known word closest to `word` if it is within edit distance 2: close enough to be a
/// typo, far enough to not suggest nonsense for short words.
pub(crate) fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("type", "type"), 0);
        assert_eq!(edit_distance("tpye", "type"), 2);
        assert_eq!(edit_distance("inpt", "input"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggests_only_close_words() {
        let known = ["type", "topic", "connection"];
        assert_eq!(closest("tpic", &known), Some("topic"));
        assert_eq!(closest("conection", &known), Some("connection"));
        assert_eq!(closest("partitions", &known), None);
    }

    #[test]
    fn syntax_errors_carry_the_marker_position() {
        let Err(p) = parse_tree("a: [1, 2\nb: c\n", "p.yaml") else {
            panic!("must not parse")
        };
        assert_eq!((p.line, p.column), (Some(2), Some(2)));
        assert!(p.message.starts_with("YAML syntax error: "), "{p}");
        let Err(dup) = parse_tree("a: 1\na: 2\n", "p.yaml") else {
            panic!("must not parse")
        };
        assert_eq!(dup.line, Some(2));
        assert!(
            dup.message
                .contains("duplicate key `a` (first defined on line 1)"),
            "{dup}"
        );
    }

    #[test]
    fn empty_values_are_placed_at_their_key() {
        let Ok(root) = parse_tree("a:\nb: x\n", "p.yaml") else {
            panic!("must parse")
        };
        let Some(map) = root.as_mapping() else {
            panic!("mapping")
        };
        let fields: Vec<_> = entries(map).map(|(_, f)| (f.is_null(), f.pos())).collect();
        assert_eq!(fields[0], (true, Some(Pos { line: 1, column: 1 })));
        assert_eq!(fields[1], (false, Some(Pos { line: 2, column: 4 })));
    }
}
