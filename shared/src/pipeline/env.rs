//! Environment variable substitution in pipeline values: `${VAR}`, `${VAR:-default}`, and
//! `$${` for a literal `${`.
//!
//! Secrets and per-stage settings (the Kafka connection, above all) stay out of the pipeline
//! file, which the seed relies on (`connection: ${KAFKA_CONNECTION}`). The syntax is the
//! shell's subset that Docker Compose and Kubernetes users already know; nothing else (no
//! `$VAR` without braces) is special, so ordinary `$` in values survives unchanged.

use std::fmt;

/// Why a value could not be substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubstError {
    /// `${NAME}` without a default, and `NAME` is not set.
    Missing { name: String },
    /// `${` with no closing `}`.
    Unterminated { at: usize },
    /// `${...}` whose name is not a variable name (letters, digits, `_`; not a leading digit).
    BadName { name: String },
}

impl fmt::Display for SubstError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { name } => write!(
                f,
                "environment variable {name} is not set (use ${{{name}:-default}} for a default)"
            ),
            Self::Unterminated { at } => write!(
                f,
                "unterminated `${{` at character {at} (write `$${{` for a literal `${{`)"
            ),
            Self::BadName { name } => write!(
                f,
                "bad environment variable name `{name}`: expected letters, digits and `_`, not starting with a digit"
            ),
        }
    }
}

/// Substitutes every `${...}` in `text` using `lookup`, returning all errors of the value at
/// once (a value may name several missing variables).
///
/// `${VAR:-default}` uses the default when `VAR` is unset or empty, as the shell does.
/// `${VAR}` with `VAR` set but empty gives the empty string.
pub fn substitute(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<SubstError>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    let mut consumed = 0; // characters of `text` before `rest`, for error positions
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let before = rest[..i].chars().count();
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            consumed += before + 3;
            rest = tail;
            continue;
        }
        let Some(body) = after.strip_prefix("${") else {
            out.push('$');
            consumed += before + 1;
            rest = &after[1..];
            continue;
        };
        let at = consumed + before + 1;
        let Some(close) = body.find('}') else {
            errors.push(SubstError::Unterminated { at });
            out.push_str(after);
            rest = "";
            break;
        };
        let inner = &body[..close];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        if !is_variable_name(name) {
            errors.push(SubstError::BadName {
                name: name.to_string(),
            });
        } else {
            match (lookup(name), default) {
                (Some(value), Some(default)) if value.is_empty() => out.push_str(default),
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => errors.push(SubstError::Missing {
                    name: name.to_string(),
                }),
            }
        }
        consumed += before + 2 + body[..=close].chars().count();
        rest = &body[close + 1..];
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KAFKA_CONNECTION" => Some("b-1.msk:9098".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn sub(text: &str) -> Result<String, Vec<SubstError>> {
        substitute(text, &env)
    }

    #[test]
    fn replaces_set_variables() {
        assert_eq!(sub("${KAFKA_CONNECTION}").as_deref(), Ok("b-1.msk:9098"));
        assert_eq!(
            sub("kafka://${KAFKA_CONNECTION}/x").as_deref(),
            Ok("kafka://b-1.msk:9098/x")
        );
        assert_eq!(sub("no variables").as_deref(), Ok("no variables"));
    }

    #[test]
    fn uses_default_when_unset_or_empty() {
        assert_eq!(
            sub("${NOPE:-localhost:9092}").as_deref(),
            Ok("localhost:9092")
        );
        assert_eq!(sub("${EMPTY:-fallback}").as_deref(), Ok("fallback"));
        assert_eq!(
            sub("${KAFKA_CONNECTION:-fallback}").as_deref(),
            Ok("b-1.msk:9098")
        );
        assert_eq!(sub("${NOPE:-}").as_deref(), Ok(""));
        assert_eq!(sub("${EMPTY}").as_deref(), Ok(""));
    }

    #[test]
    fn dollar_dollar_brace_is_literal() {
        assert_eq!(
            sub("$${KAFKA_CONNECTION}").as_deref(),
            Ok("${KAFKA_CONNECTION}")
        );
        assert_eq!(
            sub("cost $5 and $$ and $").as_deref(),
            Ok("cost $5 and $$ and $")
        );
        // Left to right: a lone `$`, then `$${` as a literal.
        assert_eq!(
            sub("$$${KAFKA_CONNECTION}").as_deref(),
            Ok("$${KAFKA_CONNECTION}")
        );
    }

    #[test]
    fn reports_every_missing_variable() {
        let errors = sub("${A}-${B:-b}-${C}").expect_err("must fail");
        assert_eq!(
            errors,
            vec![
                SubstError::Missing { name: "A".into() },
                SubstError::Missing { name: "C".into() }
            ]
        );
        assert_eq!(
            errors[0].to_string(),
            "environment variable A is not set (use ${A:-default} for a default)"
        );
    }

    #[test]
    fn rejects_unterminated_and_bad_names() {
        assert_eq!(
            sub("abc${X").expect_err("must fail"),
            vec![SubstError::Unterminated { at: 4 }]
        );
        assert_eq!(
            sub("${1X}").expect_err("must fail"),
            vec![SubstError::BadName { name: "1X".into() }]
        );
        assert_eq!(
            sub("${}").expect_err("must fail"),
            vec![SubstError::BadName {
                name: String::new()
            }]
        );
    }

    #[test]
    fn handles_non_ascii_text() {
        assert_eq!(sub("é${NOPE:-ü}ß").as_deref(), Ok("éüß"));
        assert_eq!(
            sub("é${X").expect_err("must fail"),
            vec![SubstError::Unterminated { at: 2 }]
        );
    }
}
