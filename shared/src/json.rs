//! A JSON value that borrows its strings from the input buffer.
//!
//! Decoding envelopes is refold's hot path: `serde_json::Value` allocates a `String` per
//! string and a `BTreeMap` per object. `Json<'a>` borrows every string that has no escape
//! sequence and keeps objects as a small vector of pairs in document order (envelope
//! objects have a handful of fields; a linear scan beats hashing at that size).
//!
//! [`parse`] accepts exactly what serde_json accepts, and [`Json::to_value`] equals
//! serde_json's `Value`, except that a number beyond `f64` is rejected and more than
//! [`MAX_DEPTH`] arrays and objects nested are rejected (`tests/json_diff.rs`, a
//! differential property test, holds it to that).
//!
//! Speed (`benches/core.rs`, the order stream, x86_64): about 2.5x serde_json's `Value`,
//! as fast as serde_json typed borrowed deserialization with `data` parsed, faster than
//! simd-json; sonic-rs's own `Value` parses the same envelopes about 2x faster (1.9x with
//! [`nesting_within`], which it needs: it keeps no nesting bound).

use std::borrow::Cow;
use std::fmt;

/// More arrays and objects nested in one another than this are rejected: a bound on stack
/// use for hostile input. (serde_json's own limit allows 127; ours is the contract.)
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Int(i64),
    /// Any number that is not an `i64`: fractions, exponents, and integers beyond `i64`.
    Float(f64),
    Str(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    /// Fields in document order. A key written more than once keeps every occurrence
    /// here, and the last one is the field's value: [`Json::get`] and [`Json::to_value`]
    /// both see the last, as serde_json does (and a Starlark dict built from the pairs).
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// The value of `key` in an object (its last occurrence, as in serde_json), `None` for
    /// other kinds.
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(fields) => fields.iter().rfind(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A short name of the value's kind, for error messages: "string", "object", ...
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Int(_) | Json::Float(_) => "number",
            Json::Str(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }

    /// Detaches the value from the input buffer.
    pub fn into_owned(self) -> Json<'static> {
        match self {
            Json::Null => Json::Null,
            Json::Bool(b) => Json::Bool(b),
            Json::Int(i) => Json::Int(i),
            Json::Float(f) => Json::Float(f),
            Json::Str(s) => Json::Str(Cow::Owned(s.into_owned())),
            Json::Array(items) => Json::Array(items.into_iter().map(Json::into_owned).collect()),
            Json::Object(fields) => Json::Object(
                fields
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                    .collect(),
            ),
        }
    }

    /// The equivalent `serde_json::Value` (objects with duplicate keys keep the last, as
    /// serde_json does).
    pub fn to_value(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Int(i) => Value::from(*i),
            Json::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Json::Str(s) => Value::String(s.to_string()),
            Json::Array(items) => Value::Array(items.iter().map(Json::to_value).collect()),
            Json::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

impl fmt::Display for Json<'_> {
    /// Compact JSON text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_value().to_string())
    }
}

/// Why a text is not JSON, and where (byte offset into the input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

impl std::error::Error for JsonError {}

/// Parses one JSON value (RFC 8259) that fills `input` (surrounding whitespace allowed),
/// borrowing every string without escapes. A hand-written parser: serde_json is built here
/// with `arbitrary_precision` (starlark turns it on), which makes every number of its
/// `Value` a string allocation, and envelope decoding is the hot path.
pub fn parse(input: &[u8]) -> Result<Json<'_>, JsonError> {
    let text = std::str::from_utf8(input).map_err(|e| JsonError {
        offset: e.valid_up_to(),
        message: "not valid UTF-8".to_owned(),
    })?;
    let mut p = Parser {
        text,
        bytes: input,
        pos: 0,
    };
    let value = p.value(0)?;
    p.skip_ws();
    if p.pos < p.bytes.len() {
        return Err(p.error("trailing characters after the JSON value"));
    }
    Ok(value)
}

/// Whether no more than `limit` arrays and objects nest in `bytes`: the bound
/// [`parse`] keeps, for parsers that keep none (sonic-rs 0.5.10 overflows the stack on
/// 50,000 nested arrays, a 100 KB record). Exact for JSON text (strings are skipped);
/// for other text, true only if no prefix leaves more than `limit` brackets open. A
/// vectorized count of `[` and `{` answers first when there are no more than `limit`.
pub fn nesting_within(bytes: &[u8], limit: usize) -> bool {
    // `[` | 0x20 == `{`: one compare per byte; a u8 sum per 255-byte chunk cannot overflow.
    let opening: usize = bytes
        .chunks(255)
        .map(|c| usize::from(c.iter().map(|&b| u8::from(b | 0x20 == b'{')).sum::<u8>()))
        .sum();
    if opening <= limit {
        return true;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > limit {
                        return false;
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    true
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn error(&self, message: impl Into<String>) -> JsonError {
        JsonError {
            offset: self.pos,
            message: message.into(),
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn expect_literal(&mut self, word: &str, value: Json<'a>) -> Result<Json<'a>, JsonError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("expected a JSON value"))
        }
    }

    /// A value inside `depth` arrays and objects.
    fn value(&mut self, depth: usize) -> Result<Json<'a>, JsonError> {
        self.skip_ws();
        match self.bytes.get(self.pos) {
            None => Err(self.error("unexpected end of input")),
            Some(b'{' | b'[') if depth >= MAX_DEPTH => Err(self.error(format!(
                "JSON nested deeper than {MAX_DEPTH} arrays and objects"
            ))),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Json::Str),
            Some(b't') => self.expect_literal("true", Json::Bool(true)),
            Some(b'f') => self.expect_literal("false", Json::Bool(false)),
            Some(b'n') => self.expect_literal("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected a JSON value")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json<'a>, JsonError> {
        self.pos += 1; // '{'
        let mut fields = Vec::new();
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Json::Object(fields));
        }
        loop {
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b'"') {
                return Err(self.error("expected a string key"));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b':') {
                return Err(self.error("expected `:` after an object key"));
            }
            self.pos += 1;
            let value = self.value(depth + 1)?;
            fields.push((key, value));
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Json::Object(fields));
                }
                _ => return Err(self.error("expected `,` or `}` in an object")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json<'a>, JsonError> {
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Json::Array(items));
        }
        loop {
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Json::Array(items));
                }
                _ => return Err(self.error("expected `,` or `]` in an array")),
            }
        }
    }

    /// A string starting at the opening quote; borrowed when it has no escapes.
    fn string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        self.pos += 1; // '"'
        let start = self.pos;
        loop {
            match self.bytes.get(self.pos) {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    let s = &self.text[start..self.pos];
                    self.pos += 1;
                    return Ok(Cow::Borrowed(s));
                }
                Some(b'\\') => break,
                Some(0..=0x1f) => return Err(self.error("control character in a string")),
                Some(_) => self.pos += 1,
            }
        }
        let mut out = String::from(&self.text[start..self.pos]);
        loop {
            match self.bytes.get(self.pos) {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let simple = match self.bytes.get(self.pos) {
                        Some(b'"') => Some('"'),
                        Some(b'\\') => Some('\\'),
                        Some(b'/') => Some('/'),
                        Some(b'b') => Some('\u{8}'),
                        Some(b'f') => Some('\u{c}'),
                        Some(b'n') => Some('\n'),
                        Some(b'r') => Some('\r'),
                        Some(b't') => Some('\t'),
                        Some(b'u') => None,
                        _ => return Err(self.error("invalid escape in a string")),
                    };
                    self.pos += 1;
                    let c = match simple {
                        Some(c) => c,
                        None => self.unicode_escape()?,
                    };
                    out.push(c);
                }
                Some(0..=0x1f) => return Err(self.error("control character in a string")),
                Some(_) => {
                    // Copy a run of plain characters at once (UTF-8 sequences included).
                    let run = self.pos;
                    while let Some(&b) = self.bytes.get(self.pos) {
                        if b == b'"' || b == b'\\' || b < 0x20 {
                            break;
                        }
                        self.pos += 1;
                    }
                    out.push_str(&self.text[run..self.pos]);
                }
            }
        }
    }

    /// `XXXX` after `\u` (with a following `\uXXXX` for a surrogate pair); leaves `pos`
    /// after the last hex digit.
    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let high = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&high) {
            if !self.bytes[self.pos..].starts_with(b"\\u") {
                return Err(self.error("unpaired surrogate in a \\u escape"));
            }
            self.pos += 2;
            let low = self.hex4()?;
            if !(0xDC00..0xE000).contains(&low) {
                return Err(self.error("unpaired surrogate in a \\u escape"));
            }
            0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        } else {
            high
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"))
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .bytes
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.error("short \\u escape"))?;
        let mut v = 0u32;
        for d in digits {
            let x = (*d as char)
                .to_digit(16)
                .ok_or_else(|| self.error("invalid \\u escape"))?;
            v = v * 16 + x;
        }
        self.pos += 4;
        Ok(v)
    }

    fn number(&mut self) -> Result<Json<'a>, JsonError> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let s = p.pos;
            while let Some(b'0'..=b'9') = p.bytes.get(p.pos) {
                p.pos += 1;
            }
            p.pos - s
        };
        if self.bytes.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        let n = digits(self);
        if n == 0 || (n > 1 && self.bytes[int_start] == b'0') {
            return Err(self.error("invalid number"));
        }
        let mut integral = true;
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            integral = false;
            if digits(self) == 0 {
                return Err(self.error("invalid number: digits expected after `.`"));
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
            integral = false;
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(self.error("invalid number: digits expected in the exponent"));
            }
        }
        let text = &self.text[start..self.pos];
        if integral && let Ok(i) = text.parse::<i64>() {
            return Ok(Json::Int(i));
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Json::Float(f)),
            // serde_json without `arbitrary_precision` rejects these too; with it, it keeps
            // the text, which no f64 (nor a Starlark float, nor Iceberg) can hold.
            Ok(_) => Err(JsonError {
                offset: start,
                message: "number out of range".to_owned(),
            }),
            Err(_) => Err(self.error("invalid number")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrows_plain_strings_and_owns_escaped_ones() {
        let text = r#"{"a":"plain","b":"esc\"aped","n":[1,2.5,null,true]}"#;
        let v = parse(text.as_bytes()).expect("valid JSON");
        assert!(matches!(
            v.get("a"),
            Some(Json::Str(Cow::Borrowed("plain")))
        ));
        assert!(matches!(v.get("b"), Some(Json::Str(Cow::Owned(s))) if s == "esc\"aped"));
        assert_eq!(
            v.get("n"),
            Some(&Json::Array(vec![
                Json::Int(1),
                Json::Float(2.5),
                Json::Null,
                Json::Bool(true)
            ]))
        );
        assert_eq!(
            v.to_value(),
            serde_json::from_str::<serde_json::Value>(text).expect("valid")
        );
    }

    #[test]
    fn rejects_deep_nesting() {
        let text = format!("{}{}", "[".repeat(MAX_DEPTH + 5), "]".repeat(MAX_DEPTH + 5));
        let err = parse(text.as_bytes()).expect_err("too deep");
        assert!(err.to_string().contains("nested deeper"), "{err}");
    }

    #[test]
    fn agrees_with_serde_json() {
        let ok = [
            r#"{"a":[1,-2,-0.25,0,9223372036854775807],"b":{"c":null}}"#,
            r#"["\u00e9\ud83d\ude00\n\t\"\\\/", "plain é 😀", true, false]"#,
            "  {  \"k\" : \"v\" }  ",
        ];
        for text in ok {
            let mine = parse(text.as_bytes()).expect(text).to_value();
            let theirs: serde_json::Value = serde_json::from_str(text).expect(text);
            assert_eq!(mine.to_string(), theirs.to_string(), "{text}");
        }
        // Numbers by value (serde_json is built with `arbitrary_precision` here and keeps their text).
        for (text, want) in [
            ("3.5e3", Json::Float(3500.0)),
            ("1E-2", Json::Float(0.01)),
            ("-0", Json::Int(0)),
            ("9223372036854775808", Json::Float(9.223_372_036_854_776e18)),
            ("-9223372036854775808", Json::Int(i64::MIN)),
        ] {
            assert_eq!(parse(text.as_bytes()).expect(text), want, "{text}");
        }
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\" 1}",
            "01",
            "1.",
            "-",
            "\"\\x\"",
            "\"a\nb\"",
            "tru",
            "{} {}",
            "\"\\ud800\"",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?} must be rejected");
        }
    }
}
