//! Python's dict unpacking (`{**state, "status": "x"}`) in Starlark.
//!
//! Starlark's grammar has no `**` inside dict displays, and the seed's fold uses it. Rather
//! than fork the parser, the fold source is rewritten at the token level: a `{...}` group
//! with a top-level `**` entry becomes a call of the native [`MERGE_FN`], e.g.
//! `{**state, "status": "x"}` -> `__refold_merge__((state), {"status": "x"})`.
//! Strings and comments are never touched (they are single tokens), text outside rewritten
//! groups is copied byte for byte, and each rewritten group keeps its number of lines, so
//! line numbers in fold errors still point into the user's source.

use starlark_syntax::codemap::CodeMap;
use starlark_syntax::lexer::{Lexer, Token};
use starlark_syntax::syntax::Dialect;

/// The native function a rewritten `{**x, ...}` calls (defined in `fold::starlark`).
pub const MERGE_FN: &str = "__refold_merge__";

type Tok = (usize, Token, usize);

/// Rewrites every dict display that uses `**` unpacking; other source is unchanged.
pub fn rewrite_dict_unpacking(source: &str, file_name: &str) -> Result<String, String> {
    if !source.contains("**") {
        return Ok(source.to_owned());
    }
    let codemap = CodeMap::new(file_name.to_owned(), source.to_owned());
    let mut tokens: Vec<Tok> = Vec::new();
    for t in Lexer::new(source, &Dialect::Extended, codemap) {
        tokens.push(t.map_err(|e| e.to_string())?);
    }
    let mut out = String::with_capacity(source.len() + 32);
    let copied_to = emit(source, &tokens, 0, tokens.len(), &mut out)?;
    out.push_str(&source[copied_to..]);
    Ok(out)
}

fn opens(t: &Token) -> bool {
    matches!(
        t,
        Token::OpeningCurly | Token::OpeningRound | Token::OpeningSquare
    )
}

fn closes(t: &Token) -> bool {
    matches!(
        t,
        Token::ClosingCurly | Token::ClosingRound | Token::ClosingSquare
    )
}

/// Index of the bracket closing the one at `open`.
fn matching_close(tokens: &[Tok], open: usize) -> Result<usize, String> {
    let mut depth = 0usize;
    for (i, (_, t, _)) in tokens.iter().enumerate().skip(open) {
        if opens(t) {
            depth += 1;
        } else if closes(t) {
            depth = depth.checked_sub(1).ok_or("unbalanced brackets")?;
            if depth == 0 {
                return Ok(i);
            }
        }
    }
    Err("unbalanced brackets: a `{`, `(` or `[` is never closed".to_owned())
}

/// Top-level comma-separated entries of the group between `open` and `close`, as
/// half-open token ranges.
fn entries(tokens: &[Tok], open: usize, close: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = open + 1;
    for (i, (_, t, _)) in tokens.iter().enumerate().take(close).skip(open + 1) {
        if opens(t) {
            depth += 1;
        } else if closes(t) {
            depth = depth.saturating_sub(1);
        } else if depth == 0 && matches!(t, Token::Comma) {
            out.push((start, i));
            start = i + 1;
        }
    }
    if start < close {
        out.push((start, close));
    }
    out
}

/// Copies tokens `[from, to)` into `out`, rewriting unpacking groups, and returns the byte
/// offset up to which source text was consumed.
fn emit(
    src: &str,
    tokens: &[Tok],
    from: usize,
    to: usize,
    out: &mut String,
) -> Result<usize, String> {
    let Some(first) = tokens.get(from) else {
        return Ok(src.len());
    };
    if from >= to {
        return Ok(first.0);
    }
    let mut pos = first.0;
    let mut i = from;
    while i < to {
        let (start, token, end) = &tokens[i];
        if matches!(token, Token::OpeningCurly) {
            let close = matching_close(tokens, i)?;
            let parts = entries(tokens, i, close);
            if parts
                .iter()
                .any(|&(s, _)| matches!(tokens[s].1, Token::StarStar))
            {
                out.push_str(&src[pos..*start]);
                let group = merge_call(src, tokens, &parts)?;
                let original = &src[*start..tokens[close].2];
                out.push_str(&group);
                // Keep the line count: newlines inside a call's parentheses are insignificant.
                let missing = original
                    .matches('\n')
                    .count()
                    .saturating_sub(group.matches('\n').count());
                if missing > 0 {
                    out.pop(); // the closing ')'
                    out.push_str(&"\n".repeat(missing));
                    out.push(')');
                }
                pos = tokens[close].2;
                i = close + 1;
                continue;
            }
        }
        out.push_str(&src[pos..*end]);
        pos = *end;
        i += 1;
    }
    Ok(pos)
}

/// `[**a, k: v, **b]` entries -> `__refold_merge__((a), {k: v}, (b))`.
fn merge_call(src: &str, tokens: &[Tok], parts: &[(usize, usize)]) -> Result<String, String> {
    let mut args: Vec<String> = Vec::new();
    let mut plain: Vec<String> = Vec::new();
    for &(s, e) in parts {
        let mut text = String::new();
        if matches!(tokens[s].1, Token::StarStar) {
            if !plain.is_empty() {
                args.push(format!("{{{}}}", plain.join(", ")));
                plain.clear();
            }
            emit(src, tokens, s + 1, e, &mut text)?;
            args.push(format!("({})", text.trim()));
        } else {
            emit(src, tokens, s, e, &mut text)?;
            plain.push(text.trim().to_owned());
        }
    }
    if !plain.is_empty() {
        args.push(format!("{{{}}}", plain.join(", ")));
    }
    Ok(format!("{MERGE_FN}({})", args.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(s: &str) -> String {
        rewrite_dict_unpacking(s, "t.star").expect("rewrites")
    }

    #[test]
    fn rewrites_unpacking_and_keeps_everything_else() {
        assert_eq!(
            rw(r#"x = {**s, "a": 1}"#),
            r#"x = __refold_merge__((s), {"a": 1})"#
        );
        assert_eq!(rw("x = {**a, **b}"), "x = __refold_merge__((a), (b))");
        assert_eq!(
            rw(r#"x = {"a": 1, **b}"#),
            r#"x = __refold_merge__({"a": 1}, (b))"#
        );
        assert_eq!(rw("x = {**a}"), "x = __refold_merge__((a))");
        assert_eq!(
            rw(r#"f(**kw); x = {"a": {**b}}"#),
            r#"f(**kw); x = {"a": __refold_merge__((b))}"#
        );
        let plain = "def f(s, e):\n    # {**not, code}\n    return {\"s\": \"{**x}\"}\n";
        assert_eq!(rw(plain), plain);
    }

    #[test]
    fn keeps_line_count_of_multiline_groups() {
        let src = "x = {\n  **s,\n  \"a\": 1,\n}\ny = oops\n";
        let out = rw(src);
        assert_eq!(out.lines().count(), src.lines().count(), "{out}");
        assert!(
            out.lines().nth(4).is_some_and(|l| l.contains("oops")),
            "{out}"
        );
    }

    #[test]
    fn reports_unbalanced_brackets() {
        assert!(rewrite_dict_unpacking("x = {**a", "t.star").is_err());
    }
}
