//! A problem found in a pipeline file: what is wrong, where (YAML path, line, column), and
//! how bad. Loading never stops at the first problem; it returns all of them, so a user fixes
//! a file in one round instead of one error per run.

use std::fmt;

/// How bad a problem is. Any `Error` means no [`super::Pipeline`] is returned; warnings
/// only inform (an accepted-but-ignored field, a likely typo in an unknown key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// A 1-based line and column in the pipeline file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// One problem in a pipeline file.
///
/// Displays like a compiler diagnostic so editors and CI logs can jump to it:
/// `order-events-pipeline.yaml:23:5: transformations[0].input: unknown source ...`;
/// warnings carry `warning: ` before the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    /// The YAML path of the offending value, e.g. `transformations[0].input`; empty for the
    /// document itself (a syntax error).
    pub path: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    /// The file name shown in the display (not a full path: messages should stay short).
    pub file: String,
}

impl Problem {
    pub fn error(
        file: &str,
        path: impl Into<String>,
        pos: Option<Pos>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(Severity::Error, file, path, pos, message)
    }

    pub fn warning(
        file: &str,
        path: impl Into<String>,
        pos: Option<Pos>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(Severity::Warning, file, path, pos, message)
    }

    fn new(
        severity: Severity,
        file: &str,
        path: impl Into<String>,
        pos: Option<Pos>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity,
            path: path.into(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            message: message.into(),
            file: file.to_string(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Orders problems by position so they read top to bottom like the file; problems without
/// a position (a missing top-level section) come last. The sort is stable: problems on the
/// same spot keep the order they were found in.
pub(crate) fn sort_by_position(problems: &mut [Problem]) {
    problems.sort_by_key(|p| (p.line.unwrap_or(usize::MAX), p.column.unwrap_or(0)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_a_compiler_diagnostic() {
        let p = Problem::error(
            "order-events-pipeline.yaml",
            "transformations[0].input",
            Some(Pos {
                line: 23,
                column: 5,
            }),
            "unknown source `ordr_events` (known: order_events)",
        );
        assert_eq!(
            p.to_string(),
            "order-events-pipeline.yaml:23:5: transformations[0].input: unknown source `ordr_events` (known: order_events)"
        );
        let w = Problem::warning(
            "p.yaml",
            "orchestration.engine",
            Some(Pos { line: 2, column: 3 }),
            "x",
        );
        assert_eq!(
            w.to_string(),
            "p.yaml:2:3: warning: orchestration.engine: x"
        );
        let doc = Problem::error("p.yaml", "", None, "empty");
        assert_eq!(doc.to_string(), "p.yaml: empty");
    }

    #[test]
    fn sorts_by_line_then_column_with_unplaced_last() {
        let at = |line, column| Some(Pos { line, column });
        let mut v = vec![
            Problem::error("f", "c", None, "c"),
            Problem::error("f", "b", at(9, 1), "b"),
            Problem::error("f", "a", at(2, 7), "a2"),
            Problem::error("f", "a", at(2, 3), "a1"),
        ];
        sort_by_position(&mut v);
        let order: Vec<_> = v.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(order, ["a1", "a2", "b", "c"]);
    }
}
