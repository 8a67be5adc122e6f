//! JSON as refold reads it. sonic-rs parses (its `Value`); this module adds what refold
//! keeps on top of it:
//!
//! - a nesting bound: more than [`MAX_DEPTH`] arrays and objects nested are rejected,
//!   checked by [`nesting_within`] before sonic-rs runs (sonic-rs 0.5 keeps no bound and
//!   overflows the stack on 50,000 nested arrays, a 100 KB record);
//! - numbers as refold reads them ([`Json`]): an integer that fits `i64` is [`Json::Int`],
//!   any other number [`Json::Float`] (integers beyond `i64` included); a number beyond
//!   `f64` is rejected ("number out of range");
//! - negative zero as serde_json reads it: `-0` is the integer 0, `-0.0` (and `-0e5`) the
//!   float -0.0 (sonic-rs 0.5.10 reads every spelling of it as the float +0.0; [`parse`]
//!   corrects that, see `negative_zeros`);
//! - lookups that see the last occurrence of a duplicate key ([`get`]), as serde_json
//!   does (sonic-rs keeps every occurrence, and its `Object::get` sees the first).
//!
//! [`parse`] accepts exactly what serde_json accepts, and [`to_value`] equals
//! serde_json's `Value`, but for the bound on nesting and numbers beyond `f64`
//! (`tests/json_diff.rs`, a differential property test, holds it to that).
//!
//! Speed (`benches/core.rs`, the order stream, x86_64): sonic-rs's `Value` parses the
//! envelopes about 2x faster than refold's former hand-written parser did.

use sonic_rs::{JsonContainerTrait, JsonNumberTrait};

pub use sonic_rs::{Array, Object, Value};

/// More arrays and objects nested in one another than this are rejected: a bound on stack
/// use for hostile input. (serde_json's own limit allows 127; ours is the contract.)
pub const MAX_DEPTH: usize = 64;

/// A JSON value as refold reads it: a view of a sonic-rs [`Value`] with numbers split
/// into `i64` and `f64`.
#[derive(Debug, Clone, Copy)]
pub enum Json<'v> {
    Null,
    Bool(bool),
    Int(i64),
    /// Any number that is not an `i64`: fractions, exponents, and integers beyond `i64`.
    Float(f64),
    Str(&'v str),
    Array(&'v Array),
    /// Fields in document order. A key written more than once keeps every occurrence,
    /// and the last one is the field's value ([`get`], [`to_value`]).
    Object(&'v Object),
}

impl<'v> Json<'v> {
    /// The view of a parsed value.
    #[inline]
    pub fn of(v: &'v Value) -> Self {
        match v.as_ref() {
            sonic_rs::ValueRef::Null => Json::Null,
            sonic_rs::ValueRef::Bool(b) => Json::Bool(b),
            sonic_rs::ValueRef::Number(n) => match n.as_i64() {
                Some(i) => Json::Int(i),
                // Always a number: sonic-rs holds an i64, a u64 or a finite f64.
                None => n.as_f64().map_or(Json::Null, Json::Float),
            },
            sonic_rs::ValueRef::String(s) => Json::Str(s),
            sonic_rs::ValueRef::Array(a) => Json::Array(a),
            sonic_rs::ValueRef::Object(o) => Json::Object(o),
        }
    }

    /// A short name of the value's kind, for error messages: "string", "object", ...
    pub fn kind(self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Int(_) | Json::Float(_) => "number",
            Json::Str(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }

    /// The equivalent `serde_json::Value` (objects with duplicate keys keep the last, as
    /// serde_json does).
    pub fn to_value(self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Json::Null => J::Null,
            Json::Bool(b) => J::Bool(b),
            Json::Int(i) => J::from(i),
            Json::Float(f) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
            Json::Str(s) => J::String(s.to_owned()),
            Json::Array(items) => J::Array(items.iter().map(to_value).collect()),
            Json::Object(fields) => J::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.to_owned(), to_value(v)))
                    .collect(),
            ),
        }
    }
}

/// The value of `key` in an object: its last occurrence, as in serde_json (sonic-rs's
/// own `get` sees the first). `None` for other kinds.
#[inline]
pub fn get<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    v.as_object()?
        .iter()
        .fold(None, |last, (k, v)| if k == key { Some(v) } else { last })
}

/// The equivalent `serde_json::Value`; see [`Json::to_value`].
pub fn to_value(v: &Value) -> serde_json::Value {
    Json::of(v).to_value()
}

/// A short name of the value's kind; see [`Json::kind`].
pub fn kind(v: &Value) -> &'static str {
    Json::of(v).kind()
}

/// Compact JSON text of `v` (as serde_json writes it: duplicate keys keep the last).
pub fn to_text(v: &Value) -> String {
    let mut out = Vec::with_capacity(128);
    write_text(Json::of(v), &mut out);
    utf8_text(out)
}

/// [`to_text`] appended to `out` (UTF-8): the archive writes a batch's `data` into one buffer.
pub fn write_value_text(v: &Value, out: &mut Vec<u8>) {
    write_text(Json::of(v), out);
}

/// Text written by serde_json or from `&str`s: always UTF-8, so the fallback is never taken.
pub(crate) fn utf8_text(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Writes what `to_value(v).to_string()` would, without building the `serde_json::Value`
/// (the archive writes every event's data this way): keys sorted (serde_json's map), the
/// last occurrence of a duplicate key, numbers and strings through serde_json itself.
fn write_text(v: Json<'_>, out: &mut Vec<u8>) {
    match v {
        Json::Null => out.extend_from_slice(b"null"),
        Json::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        // The numbers themselves, not a `serde_json::Number`: with `arbitrary_precision`
        // (on in this build) each Number is a string on the heap. Same text: serde_json
        // writes both through one formatter, and a non-finite float as `null`.
        Json::Int(i) => write_serde(&i, out),
        Json::Float(f) => write_serde(&f, out),
        Json::Str(s) => write_serde(s, out),
        Json::Array(items) => {
            out.push(b'[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_text(Json::of(x), out);
            }
            out.push(b']');
        }
        Json::Object(fields) if fields.len() <= SMALL_OBJECT => {
            // The usual event's objects: sorted on the stack, no allocation.
            let mut entries: arrayvec::ArrayVec<(&str, &Value), SMALL_OBJECT> =
                fields.iter().collect();
            write_object(&mut entries, out);
        }
        Json::Object(fields) => {
            let mut entries: Vec<(&str, &Value)> = fields.iter().collect();
            write_object(&mut entries, out);
        }
    }
}

/// Objects of at most this many fields are sorted without an allocation.
const SMALL_OBJECT: usize = 16;

/// An object's fields, keys sorted, the last of a duplicate key winning.
fn write_object(entries: &mut [(&str, &Value)], out: &mut Vec<u8>) {
    // Stable: of equal keys the last in the document stays last, and wins below.
    entries.sort_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    let mut first = true;
    for (i, (k, x)) in entries.iter().enumerate() {
        if entries.get(i + 1).is_some_and(|next| next.0 == *k) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        write_serde(k, out);
        out.push(b':');
        write_text(Json::of(x), out);
    }
    out.push(b'}');
}

/// Appends serde_json's compact text of `v` (a number, a string: no allocation of its own).
pub(crate) fn write_serde<T: serde::Serialize + ?Sized>(v: &T, out: &mut Vec<u8>) {
    // Writing a number or a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}

/// Why a text is not JSON, and where (byte offset into the input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    pub offset: usize,
    pub message: String,
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

impl std::error::Error for JsonError {}

/// The message of a number beyond `f64`.
pub const OUT_OF_RANGE: &str = "number out of range";

/// Parses one JSON value (RFC 8259) that fills `input` (surrounding whitespace allowed):
/// the nesting bound first, then sonic-rs, then the correction of negative zeros.
pub fn parse(input: &[u8]) -> Result<Value, JsonError> {
    if let Some(offset) = nesting_excess(input, MAX_DEPTH) {
        return Err(JsonError {
            offset,
            message: format!("JSON nested deeper than {MAX_DEPTH} arrays and objects"),
        });
    }
    let value = sonic_rs::from_slice::<Value>(input).map_err(|e| sonic_error(input, &e))?;
    if !may_hold_negative_zero(input) {
        return Ok(value);
    }
    match negative_zeros(input) {
        None => Ok(value),
        Some(fixed) => sonic_rs::from_slice::<Value>(&fixed).map_err(|e| sonic_error(&fixed, &e)),
    }
}

/// sonic-rs's error as a [`JsonError`]: its message without the position and excerpt it
/// appends; a number beyond `f64` points at the number's first byte.
#[cold]
fn sonic_error(input: &[u8], e: &sonic_rs::Error) -> JsonError {
    let text = e.to_string();
    let message = text.split_once(" at line ").map_or(&*text, |(m, _)| m);
    let mut offset = e.offset().min(input.len());
    if message.starts_with("Float number must be finite") {
        while offset > 0 && is_number_byte(input[offset - 1]) {
            offset -= 1;
        }
        return JsonError {
            offset,
            message: OUT_OF_RANGE.to_owned(),
        };
    }
    JsonError {
        offset,
        message: message.to_owned(),
    }
}

fn is_number_byte(b: u8) -> bool {
    matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
}

/// Whether no more than `limit` arrays and objects nest in `bytes`: the bound [`parse`]
/// keeps, for parsers that keep none (sonic-rs 0.5.10 overflows the stack on 50,000
/// nested arrays, a 100 KB record). Exact for JSON text (strings are skipped); for other
/// text, true only if no prefix leaves more than `limit` brackets open.
pub fn nesting_within(bytes: &[u8], limit: usize) -> bool {
    nesting_excess(bytes, limit).is_none()
}

/// The offset of the first `[` or `{` (outside strings) that opens more than `limit`
/// arrays and objects. A vectorized count of `[` and `{` answers first when there are no
/// more than `limit`.
fn nesting_excess(bytes: &[u8], limit: usize) -> Option<usize> {
    // `[` | 0x20 == `{`: one compare per byte; a u8 sum per 255-byte chunk cannot overflow.
    let opening: usize = bytes
        .chunks(255)
        .map(|c| usize::from(c.iter().map(|&b| u8::from(b | 0x20 == b'{')).sum::<u8>()))
        .sum();
    if opening <= limit {
        return None;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in bytes.iter().enumerate() {
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
                        return Some(i);
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    None
}

/// Whether `bytes` holds `-0` followed by anything but a digit: every number that is a
/// negative zero starts so (`-0`, `-0.0`, `-0e5`); dates (`2026-02-12`) and ids
/// (`evt-0001`) do not, and the rare string that does costs an exact scan. One vectorized
/// pass (no early exit).
#[inline]
fn may_hold_negative_zero(bytes: &[u8]) -> bool {
    let n = bytes.len();
    if n < 2 {
        return false;
    }
    if bytes[n - 2..] == *b"-0" {
        return true;
    }
    let (a, b, c) = (&bytes[..n - 2], &bytes[1..n - 1], &bytes[2..]);
    a.iter().zip(b).zip(c).fold(false, |hit, ((&x, &y), &z)| {
        hit | ((x == b'-') & (y == b'0') & !z.is_ascii_digit())
    })
}

/// `input` (valid JSON) with every number that is a negative zero respelled so that
/// sonic-rs reads it as serde_json does: `-0` as `0` (the integer), `-0.0`, `-0e5`, ... as
/// `-1e-999` (the float -0.0, which sonic-rs gets right when a nonzero number underflows).
/// `None` when there is none (the `-0` was in a string).
#[cold]
fn negative_zeros(input: &[u8]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let (mut i, mut in_string, mut escaped) = (0, false, false);
    while i < input.len() {
        let b = input[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                i += 1;
            }
            // A number that starts with a digit is skipped whole: the `-` of its
            // exponent (`0E-00`) does not start a number.
            b'0'..=b'9' => {
                i += input[i..]
                    .iter()
                    .take_while(|&&c| is_number_byte(c))
                    .count()
            }
            b'-' => {
                let end = i + input[i..]
                    .iter()
                    .take_while(|&&c| is_number_byte(c))
                    .count();
                let token = &input[i..end];
                let mantissa_end = token
                    .iter()
                    .position(|&c| c == b'e' || c == b'E')
                    .unwrap_or(token.len());
                let zero = token[1..mantissa_end]
                    .iter()
                    .all(|&c| c == b'0' || c == b'.');
                if zero {
                    let out = out.get_or_insert_with(|| Vec::with_capacity(input.len() + 16));
                    out.extend_from_slice(&input[copied..i]);
                    out.extend_from_slice(if token == b"-0" { b"0" } else { b"-1e-999" });
                    copied = end;
                }
                i = end.max(i + 1);
            }
            _ => i += 1,
        }
    }
    let mut out = out?;
    out.extend_from_slice(&input[copied..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Value, JsonError> {
        parse(text.as_bytes())
    }

    #[test]
    fn numbers_as_refold_reads_them() {
        for (text, want) in [
            ("3", "Int(3)"),
            ("3.5e3", "Float(3500.0)"),
            ("1E-2", "Float(0.01)"),
            ("-0", "Int(0)"),
            ("-0.0", "Float(-0.0)"),
            ("-0e5", "Float(-0.0)"),
            ("-0.000E-3", "Float(-0.0)"),
            ("0.0", "Float(0.0)"),
            ("-1e-400", "Float(-0.0)"),
            ("-0.5", "Float(-0.5)"),
            ("9223372036854775807", "Int(9223372036854775807)"),
            ("9223372036854775808", "Float(9.223372036854776e18)"),
            ("18446744073709551615", "Float(1.8446744073709552e19)"),
            ("-9223372036854775808", "Int(-9223372036854775808)"),
            ("-9223372036854775809", "Float(-9.223372036854776e18)"),
        ] {
            let v = parse_str(text).expect(text);
            assert_eq!(format!("{:?}", Json::of(&v)), want, "{text}");
        }
        let v = parse_str(r#"{"a": [-0, -0.0, "-0", "x-0.0"], "-0": -0}"#).expect("valid");
        assert_eq!(
            to_text(&v),
            r#"{"-0":0,"a":[0,-0.0,"-0","x-0.0"]}"#,
            "strings keep their text"
        );
        // The `-` of an exponent is not a negative zero (found by tests/json_diff.rs).
        let v = parse_str(r#"[0E-00, 1e-0, -0.0E00]"#).expect("valid");
        assert_eq!(to_text(&v), "[0.0,1.0,-0.0]");
        let err = parse_str("[1, 1e400]").expect_err("beyond f64");
        assert_eq!((err.offset, err.message.as_str()), (4, OUT_OF_RANGE));
    }

    #[test]
    fn duplicate_keys_read_as_the_last() {
        let v = parse_str(r#"{"a":1,"b":2,"a":3}"#).expect("valid");
        assert!(matches!(get(&v, "a").map(Json::of), Some(Json::Int(3))));
        assert!(get(&v, "c").is_none());
        assert_eq!(to_text(&v), r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn rejects_deep_nesting_and_bad_json_with_offsets() {
        let text = format!("{}{}", "[".repeat(MAX_DEPTH + 5), "]".repeat(MAX_DEPTH + 5));
        let err = parse_str(&text).expect_err("too deep");
        assert!(err.message.contains("nested deeper"), "{err}");
        assert_eq!(err.offset, MAX_DEPTH);
        // 50,000 nested arrays would overflow sonic-rs's stack.
        let deep = "[".repeat(50_000);
        assert!(parse_str(&deep).is_err());
        let err = parse_str("{\"a\": tru}").expect_err("bad literal");
        assert_eq!(err.offset, 9);
        assert!(!err.message.contains("line"), "{err}");
        for bad in [
            "",
            "{",
            "[1,]",
            "01",
            "1.",
            "-",
            "\"\\x\"",
            "{} {}",
            "\"\\ud800\"",
        ] {
            assert!(parse_str(bad).is_err(), "{bad:?} must be rejected");
        }
    }
}
