//! Checks that span sections: references between sources, transformations, sinks and
//! state types; merge keys against the key field; reserved column names; and that each
//! Starlark fold compiles, with its errors mapped onto the pipeline file's lines.
//!
//! They run on whatever [`super::read`] produced, even when reading found errors, skipping
//! only what an earlier problem already covers (an empty name was reported as missing), so
//! the user sees every independent problem in one run.

use super::problem::Pos;
use super::yaml::{Reader, index, join};
use super::{
    BOOKKEEPING_COLUMNS, FoldSource, JSON_STATE_COLUMN, Pipeline, Sink, SinkMode, TENANT_COLUMN,
    Transformation,
};

pub(crate) fn check(r: &mut Reader<'_>, p: &Pipeline) {
    for (i, t) in p.transformations.iter().enumerate() {
        let path = index("transformations", i);
        check_input(r, p, &path, t);
        check_key_field(r, &path, t);
        check_state_type(r, p, &path, t);
        check_fold(r, &path, t);
        check_upcasters(r, &path, t);
        check_has_sink(r, p, &path, t);
    }
    for sink in p.sinks.values() {
        check_sink(r, p, sink);
    }
}

fn known_list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        "none declared".to_string()
    } else {
        format!("known: {}", names.join(", "))
    }
}

fn check_input(r: &mut Reader<'_>, p: &Pipeline, path: &str, t: &Transformation) {
    if t.input.is_empty() || p.sources.contains_key(&t.input) {
        return;
    }
    let input_path = join(path, "input");
    let pos = r.pos_of(&input_path);
    r.error(
        &input_path,
        pos,
        format!(
            "unknown source `{}` ({})",
            t.input,
            known_list(p.sources.keys())
        ),
    );
}

fn check_key_field(r: &mut Reader<'_>, path: &str, t: &Transformation) {
    let key = t.key_field.as_str();
    if key == TENANT_COLUMN || BOOKKEEPING_COLUMNS.contains(&key) {
        let key_path = join(path, "key_field");
        let pos = r.pos_of(&key_path);
        r.error(
            &key_path,
            pos,
            format!("key_field `{key}` collides with a column refold adds to every state table"),
        );
    }
}

fn check_state_type(r: &mut Reader<'_>, p: &Pipeline, path: &str, t: &Transformation) {
    let Some(name) = &t.state_type else { return };
    let Some(state_type) = p.state_types.get(name) else {
        let type_path = join(path, "state_type");
        let pos = r.pos_of(&type_path);
        r.warning(
            &type_path,
            pos,
            format!(
                "state type `{name}` is not declared under `state_types`: the state is stored as one JSON column `{JSON_STATE_COLUMN}`"
            ),
        );
        return;
    };
    let key = t.key_field.as_str();
    if key.is_empty() || key == TENANT_COLUMN || BOOKKEEPING_COLUMNS.contains(&key) {
        return; // reported already: as missing, or as a reserved name
    }
    for column in state_type.columns.iter().filter(|c| c.name == t.key_field) {
        let column_path = join(&join(&join("state_types", name), "columns"), &column.name);
        let pos = r.pos_of(&column_path);
        r.error(
            &column_path,
            pos,
            format!(
                "column `{}` collides with the key column (key_field of transformation `{}`)",
                column.name, t.name
            ),
        );
    }
}

/// Each upcaster compiles and defines `upcast(event)`; errors point into the file.
fn check_upcasters(r: &mut Reader<'_>, path: &str, t: &Transformation) {
    for (i, u) in t.upcasters.iter().enumerate() {
        let Err(message) = crate::fold::check_upcast_source(&u.source) else {
            continue;
        };
        let function_path = join(&format!("{}[{i}]", join(path, "upcasters")), "function");
        let first = r.pos_of(&function_path).unwrap_or(Pos {
            line: u.line,
            column: 1,
        });
        let (pos, text) = map_fold_error(&message, first);
        let text = text.replace("of the fold)", "of the upcaster)");
        r.error(&function_path, Some(pos), text);
    }
}

fn check_fold(r: &mut Reader<'_>, path: &str, t: &Transformation) {
    let FoldSource::Starlark { source, line } = &t.fold else {
        return;
    };
    let Err(message) = crate::fold::check_starlark_source(source) else {
        return;
    };
    let fold_path = join(path, "fold_function");
    let first = r.pos_of(&fold_path).unwrap_or(Pos {
        line: *line,
        column: 1,
    });
    let (pos, text) = map_fold_error(&message, first);
    r.error(&fold_path, Some(pos), text);
}

/// Maps a fold compile error onto the pipeline file. The fold module reports
/// `line N: message` (N 1-based in the fold's own source) when it has a location; line N of
/// the source is line `first.line + N - 1` of the file, indented like the block's first line.
/// Only the first line of the message is kept: a source snippet would show the fold's own
/// line numbers, which are not the file's.
fn map_fold_error(message: &str, first: Pos) -> (Pos, String) {
    let head = message
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(message)
        .trim();
    if let Some(rest) = head.strip_prefix("line ") {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if let Ok(n) = rest[..digits].parse::<usize>() {
            let text = rest[digits..].trim_start_matches([':', ' ']).to_string();
            let line = first.line + n.saturating_sub(1);
            return (
                Pos {
                    line,
                    column: first.column,
                },
                format!("{text} (line {n} of the fold)"),
            );
        }
    }
    (first, head.to_string())
}

fn check_has_sink(r: &mut Reader<'_>, p: &Pipeline, path: &str, t: &Transformation) {
    if t.name.is_empty() {
        return;
    }
    let only = p.transformations.len() == 1;
    let written = p.sinks.values().any(|s| match &s.input {
        Some(input) => *input == t.name,
        None => only,
    });
    if !written && !p.sinks.is_empty() {
        let pos = r.pos_of(path);
        r.error(
            path,
            pos,
            format!("no sink writes the output of transformation `{}`", t.name),
        );
    }
}

fn check_sink(r: &mut Reader<'_>, p: &Pipeline, sink: &Sink) {
    let path = join("sinks", &sink.name);
    let input_path = join(&path, "input");
    let transformation = match &sink.input {
        Some(input) => {
            let found = p.transformations.iter().find(|t| t.name == *input);
            if found.is_none() {
                let pos = r.pos_of(&input_path);
                let known = known_list(p.transformations.iter().map(|t| &t.name));
                r.error(
                    &input_path,
                    pos,
                    format!("unknown transformation `{input}` ({known})"),
                );
            }
            found
        }
        None if p.transformations.len() > 1 => {
            let pos = r.pos_of(&path);
            let names = p
                .transformations
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            r.error(
                &path,
                pos,
                format!(
                    "set `input`: the pipeline has {} transformations ({names})",
                    p.transformations.len()
                ),
            );
            None
        }
        None => p.transformations.first(),
    };
    let keys_path = join(&path, "merge_keys");
    match sink.mode {
        SinkMode::MergeOnKey => {
            let Some(t) = transformation.filter(|t| !t.key_field.is_empty()) else {
                return;
            };
            let key = &t.key_field;
            if sink.merge_keys.is_empty() {
                let pos = r.pos_of(&keys_path).or_else(|| r.pos_of(&path));
                r.error(
                    &keys_path,
                    pos,
                    format!(
                        "mode merge_on_key needs `merge_keys: [{key}]` (the key_field of transformation `{}`)",
                        t.name
                    ),
                );
            } else if sink.merge_keys != [key.clone()] {
                let pos = r.pos_of(&keys_path);
                r.error(
                    &keys_path,
                    pos,
                    format!(
                        "merge_keys [{}] do not match key_field {key} of transformation `{}`: merge_on_key merges on the fold's key, so use [{key}]",
                        sink.merge_keys.join(", "),
                        t.name
                    ),
                );
            }
        }
        SinkMode::Append => {
            // An event_fold yields one state per key; a history of states is not built yet,
            // and accepting the mode while merging would be a lie.
            let mode_path = join(&path, "mode");
            let pos = r.pos_of(&mode_path).or_else(|| r.pos_of(&path));
            r.error(
                &mode_path,
                pos,
                "mode append is not supported yet: an event_fold sink keeps one row per key, use mode: merge_on_key",
            );
        }
    }
    if !sink.table.name.is_empty() {
        let first_writer = p
            .sinks
            .values()
            .find(|s| s.table == sink.table)
            .map(|s| s.name.as_str());
        if let Some(other) = first_writer.filter(|other| *other != sink.name) {
            let table_path = join(&path, "table");
            let pos = r.pos_of(&table_path);
            r.error(
                &table_path,
                pos,
                format!("table `{}` is also written by sink `{other}`", sink.table),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_fold_lines_into_the_file() {
        let first = Pos {
            line: 28,
            column: 7,
        };
        let (pos, text) = map_fold_error("line 3: unexpected `)`\n  snippet", first);
        assert_eq!(
            pos,
            Pos {
                line: 30,
                column: 7
            }
        );
        assert_eq!(text, "unexpected `)` (line 3 of the fold)");
        let (pos, text) = map_fold_error("fold must define `fold(state, event)`", first);
        assert_eq!(pos, first);
        assert_eq!(text, "fold must define `fold(state, event)`");
    }
}
