//! Differential test of refold's JSON decoding (`refold::json::parse`, sonic-rs with
//! refold's bounds, and `Envelope::decode` on top of it) against serde_json (as built
//! here, with `arbitrary_precision`, which starlark turns on).
//!
//! Random JSON documents (nested objects and arrays, every escape including `\u` surrogate
//! pairs, integers, big and precise numbers, negative zeros, exponents, duplicate keys,
//! whitespace) and near-JSON garbage made from them: refold accepts exactly what serde_json
//! accepts, `json::to_value` equals serde_json's `Value`, and in every object
//! `json::get(k)` and `to_value()[k]` agree with serde_json's `[k]` (the last occurrence
//! of a duplicate key). Each document that is an object is also decoded as the `data` of
//! an envelope: decoding succeeds exactly then, and `event.<k>` (`Envelope::attr`) and
//! `key(k)` see what serde_json sees.
//!
//! Intentional differences, each with its own test below:
//! - numbers: refold reads an `i64` or an `f64` (`Json::Int`, `Json::Float`), so values are
//!   compared by number, not by text (serde_json keeps `2.50` as written, `to_value` writes
//!   `2.5`); an integer beyond `i64` is an `f64`.
//! - a number beyond the range of `f64` (`1e400`) is rejected ("number out of range"), as
//!   serde_json does without `arbitrary_precision`; with it, serde_json keeps the text.
//! - nesting: more than `MAX_DEPTH` (64) arrays and objects are rejected; serde_json allows
//!   127.

use proptest::prelude::*;
use proptest::sample::Index;
use refold::envelope::{Attr, Envelope};
use refold::json::{self, Json, MAX_DEPTH};
use serde_json::{Number, Value};

// ---------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------

/// `v` with every number as refold reads it: an `i64` when its text is an integer that
/// fits, else the nearest `f64` (a string marker when there is none: out of range).
fn norm(v: &Value) -> Value {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => Value::from(i),
            None => n.as_f64().and_then(Number::from_f64).map_or_else(
                || Value::String(format!("<out of range: {n}>")),
                Value::Number,
            ),
        },
        Value::Array(items) => Value::Array(items.iter().map(norm).collect()),
        Value::Object(fields) => {
            Value::Object(fields.iter().map(|(k, v)| (k.clone(), norm(v))).collect())
        }
        other => other.clone(),
    }
}

/// How many arrays and objects nest in `v`.
fn depth(v: &json::Value) -> usize {
    match Json::of(v) {
        Json::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Json::Object(fields) => 1 + fields.iter().map(|(_, v)| depth(v)).max().unwrap_or(0),
        _ => 0,
    }
}

fn depth_of_value(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth_of_value).max().unwrap_or(0),
        Value::Object(fields) => 1 + fields.values().map(depth_of_value).max().unwrap_or(0),
        _ => 0,
    }
}

/// Does serde_json's value hold a number that no `f64` can (`1e400`)?
fn out_of_range(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_i64().is_none() && n.as_f64().is_none(),
        Value::Array(items) => items.iter().any(out_of_range),
        Value::Object(fields) => fields.values().any(out_of_range),
        _ => false,
    }
}

/// Every object in `mine`: for each of its keys, `get(k)`, `to_value()[k]` and serde_json's
/// `[k]` agree; then the same below.
fn check_lookups(mine: &json::Value, theirs: &Value) -> Result<(), TestCaseError> {
    match (Json::of(mine), theirs) {
        (Json::Object(fields), Value::Object(map)) => {
            let as_value = json::to_value(mine);
            prop_assert_eq!(fields.len() >= map.len(), true);
            for (k, _) in fields.iter() {
                let got = json::get(mine, k);
                prop_assert!(got.is_some(), "get({:?}) is None", k);
                let got = got.expect("checked");
                let want = &map[k];
                prop_assert_eq!(norm(&json::to_value(got)), norm(want), "get({:?})", k);
                prop_assert_eq!(norm(&as_value[k]), norm(want), "to_value()[{:?}]", k);
                check_lookups(got, want)?;
            }
            prop_assert!(
                json::get(mine, "\u{1}absent").is_none(),
                "found an absent key"
            );
            Ok(())
        }
        (Json::Array(items), Value::Array(theirs)) => {
            prop_assert_eq!(items.len(), theirs.len());
            for (m, t) in items.iter().zip(theirs) {
                check_lookups(m, t)?;
            }
            Ok(())
        }
        _ => {
            prop_assert!(json::get(mine, "a").is_none());
            Ok(())
        }
    }
}

/// A valid envelope around `data` (raw JSON text).
fn envelope_with_data(data: &[u8]) -> Vec<u8> {
    let mut text =
        br#"{"event_id": "e-1", "event_type": "T", "entity_type": "E", "entity_id": "id-1",
        "tenant_id": "t", "timestamp": "2026-02-12T10:30:00Z", "version": 1, "data": "#
            .to_vec();
    text.extend_from_slice(data);
    text.push(b'}');
    text
}

/// `data` (the bytes of an object serde_json accepted, its `Value`) through
/// `Envelope::decode`: accepted unless too deep or out of range, and every `event.<k>`
/// reads what serde_json reads.
fn check_envelope(
    bytes: &[u8],
    theirs: &serde_json::Map<String, Value>,
) -> Result<(), TestCaseError> {
    let text = envelope_with_data(bytes);
    let decoded = Envelope::decode(&text);
    let as_value = Value::Object(theirs.clone());
    if depth_of_value(&as_value) + 1 > MAX_DEPTH || out_of_range(&as_value) {
        let e = decoded.err();
        prop_assert!(e.as_ref().is_some_and(|e| e.is_bad_json()), "{:?}", e);
        return Ok(());
    }
    let e = match decoded {
        Ok(e) => e,
        Err(e) => return Err(TestCaseError::fail(format!("envelope rejected: {e}"))),
    };
    prop_assert_eq!(norm(&json::to_value(e.data())), norm(&as_value));
    let own = [
        "type",
        "event_id",
        "event_type",
        "entity_type",
        "entity_id",
        "tenant_id",
        "timestamp",
        "version",
        "data",
        "metadata",
    ];
    for (k, want) in theirs {
        if own.contains(&k.as_str()) {
            continue;
        }
        let got = match e.attr(k) {
            Some(Attr::Json(v)) => json::to_value(v),
            other => return Err(TestCaseError::fail(format!("attr({k:?}) = {other:?}"))),
        };
        prop_assert_eq!(norm(&got), norm(want), "attr({:?})", k);
        match (e.key(k), norm(want)) {
            (Ok(key), Value::String(s)) if !s.is_empty() => {
                prop_assert_eq!(key.as_ref(), s.as_str())
            }
            (Ok(key), Value::Number(n)) if n.is_i64() => {
                prop_assert_eq!(key.as_ref(), n.to_string())
            }
            (Ok(key), Value::Null) => prop_assert_eq!(key.as_ref(), "id-1"),
            (Err(err), _) => prop_assert_eq!(err.field, Some(format!("data.{k}"))),
            (Ok(key), other) => prop_assert!(false, "key({:?}) = {:?} for {:?}", k, key, other),
        }
    }
    prop_assert!(e.attr("\u{1}absent").is_none(), "found an absent attribute");
    Ok(())
}

/// The differential check on one input.
fn agree(bytes: &[u8]) -> Result<(), TestCaseError> {
    let theirs = serde_json::from_slice::<Value>(bytes);
    let mine = json::parse(bytes);
    let text = String::from_utf8_lossy(bytes);
    match (mine, theirs) {
        (Ok(mine), Ok(theirs)) => {
            prop_assert_eq!(norm(&json::to_value(&mine)), norm(&theirs), "{}", text);
            // The text refold archives is serde_json's own writing of that value.
            prop_assert_eq!(
                json::to_text(&mine),
                json::to_value(&mine).to_string(),
                "{}",
                text
            );
            // The nesting pre-check is exact on JSON.
            let d = depth(&mine);
            prop_assert!(json::nesting_within(bytes, d), "depth {} in {}", d, text);
            prop_assert!(
                d == 0 || !json::nesting_within(bytes, d - 1),
                "depth {} in {}",
                d,
                text
            );
            check_lookups(&mine, &theirs)?;
            // The JSON text of a value parses back to the same value.
            let shown = json::to_text(&mine);
            let again = json::parse(shown.as_bytes());
            prop_assert!(again.is_ok(), "{} does not parse back", shown);
            prop_assert_eq!(
                norm(&json::to_value(&again.expect("checked"))),
                norm(&theirs),
                "{}",
                shown
            );
            if let Value::Object(map) = &theirs {
                check_envelope(bytes, map)?;
            }
        }
        (Err(e), Err(_)) => {
            prop_assert!(e.offset <= bytes.len(), "{:?} points past the input", e);
        }
        (Err(e), Ok(theirs)) if e.message.contains("nested deeper") => {
            prop_assert!(!json::nesting_within(bytes, MAX_DEPTH), "{}", text);
            prop_assert!(depth_of_value(&theirs) > MAX_DEPTH, "{}", text);
        }
        (Err(e), Ok(_)) => {
            // Only for a number beyond f64 (serde_json keeps its text; it may even have
            // dropped it, as the earlier value of a duplicate key).
            let token: Vec<u8> = bytes[e.offset.min(bytes.len())..]
                .iter()
                .copied()
                .take_while(|b| matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                .collect();
            let beyond_f64 = std::str::from_utf8(&token)
                .ok()
                .and_then(|t| t.parse::<f64>().ok())
                .is_some_and(f64::is_infinite);
            prop_assert!(
                beyond_f64 && e.message == "number out of range",
                "refold rejects what serde_json accepts: {:?}: {}",
                text,
                e
            );
        }
        (Ok(mine), Err(e)) => {
            prop_assert!(
                false,
                "refold accepts what serde_json rejects ({}): {:?} -> {}",
                e,
                text,
                json::to_text(&mine)
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Generators: JSON text, written out with random whitespace and escapes
// ---------------------------------------------------------------------------------------

fn ws() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(String::new()),
        1 => "[ \t\n\r]{1,3}",
    ]
}

/// One character of a string, written in one of the ways JSON allows.
fn string_char() -> impl Strategy<Value = String> {
    prop_oneof![
        // Plain ASCII, and the characters that need escaping, escaped.
        6 => "[a-zA-Z0-9 _.:/\\[\\]{}-]",
        2 => prop::sample::select(vec![
            "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t",
        ])
        .prop_map(str::to_owned),
        // Any character, raw (when JSON allows it raw) or as \u escapes (a surrogate pair
        // beyond the BMP), in either case of hex digits.
        2 => (any::<char>(), any::<bool>(), any::<bool>()).prop_map(|(c, escape, upper)| {
            if escape || c < ' ' || c == '"' || c == '\\' {
                let mut units = [0u16; 2];
                c.encode_utf16(&mut units)
                    .iter()
                    .map(|u| if upper { format!("\\u{u:04X}") } else { format!("\\u{u:04x}") })
                    .collect()
            } else {
                c.to_string()
            }
        }),
        // Non-ASCII written raw.
        1 => prop::sample::select(vec!["é", "ß", "€", "😀", "\u{7f}", "\u{feff}", "\u{2028}"])
            .prop_map(str::to_owned),
    ]
}

fn string() -> impl Strategy<Value = String> {
    prop::collection::vec(string_char(), 0..8).prop_map(|chars| format!("\"{}\"", chars.concat()))
}

/// Keys from a small set, so that objects often repeat a key, sometimes spelled with an
/// escape (`"a"` and `"\u0061"` are the same key).
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "\"a\"", "\"b\"", "\"\\u0061\"", "\"\"", "\"key\"", "\"k\\u00e9y\"", "\"k\u{e9}y\"",
            "\"\\ud83d\\ude00\"", "\"😀\"",
        ])
        .prop_map(str::to_owned),
        1 => string(),
    ]
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        // Small integers, i64's edges and just beyond them.
        3 => any::<i64>().prop_map(|i| i.to_string()),
        1 => prop::sample::select(vec![
            "0", "-0", "9223372036854775807", "-9223372036854775808", "9223372036854775808",
            "-9223372036854775809", "18446744073709551615", "18446744073709551616",
            "0.0", "-0.0", "1e0", "1E+2", "1e-2", "0.1", "2.50", "5e-324", "2e-324",
            "1.7976931348623157e308", "1.7976931348623159e308", "1e309", "-1e400", "1e-400",
            "123456789012345678901234567890", "0.30000000000000004", "1.00000000000000011102230246251565404236316680908203125",
        ])
        .prop_map(str::to_owned),
        // Any grammatical number: long mantissas, fractions, exponents of any size.
        4 => "-?(0|[1-9][0-9]{0,24})(\\.[0-9]{1,22})?([eE][+-]?[0-9]{1,3})?",
        1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| f.to_string()),
    ]
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just("null".to_owned()),
        1 => Just("true".to_owned()),
        1 => Just("false".to_owned()),
        4 => number(),
        4 => string(),
    ]
}

/// A JSON document (text), nested up to a few levels.
fn document() -> impl Strategy<Value = String> {
    let leaf = (ws(), scalar(), ws()).prop_map(|(a, v, b)| format!("{a}{v}{b}"));
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            (prop::collection::vec(inner.clone(), 0..6), ws()).prop_map(|(items, w)| {
                if items.is_empty() {
                    format!("[{w}]")
                } else {
                    format!("[{}]", items.join(","))
                }
            }),
            (
                prop::collection::vec((ws(), key(), ws(), inner), 0..6),
                ws()
            )
                .prop_map(|(fields, w)| {
                    if fields.is_empty() {
                        format!("{{{w}}}")
                    } else {
                        let fields: Vec<String> = fields
                            .into_iter()
                            .map(|(a, k, b, v)| format!("{a}{k}{b}:{v}"))
                            .collect();
                        format!("{{{}}}", fields.join(","))
                    }
                }),
        ]
    })
}

/// One edit that usually breaks JSON, sometimes subtly.
#[derive(Debug, Clone)]
enum Edit {
    Insert(Index, Vec<u8>),
    Delete(Index),
    Replace(Index, u8),
    Truncate(Index),
    Swap(Index, Index),
}

fn interesting_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::sample::select(
            b"{}[]:,\"\\ \t\n\r-+.eE0123456789tfnulrsaxubU/\x00\x01\x08\x0b\x0c\x1f\x7f".to_vec()
        )
        .prop_map(|b| vec![b]),
        2 => prop::sample::select(vec![
            &b"\\u"[..], b"\\ud800", b"\\udc00", b"\\ud83d\\ude00", b"\\ud83d", b"\\ud83d\\u0041",
            b"\\uD83D\\uDE00", b"\\u00", b"\\uzzzz", b"null", b"true", b"false", b"nul",
            b"1e", b"-0", b"00", b"0x1", b".5", b"1.", b"--1", b"Infinity", b"NaN", b",]",
            b",}", b"[,", b"{,", b"\"\"", b"\"a\":1", b"//", b"/*", b"\xef\xbb\xbf",
            b"\xc3\xa9", b"\xc3", b"\xff", b"\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
            b"\xe2\x80\xa8",
        ])
        .prop_map(<[u8]>::to_vec),
        1 => prop::collection::vec(any::<u8>(), 1..4),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<Index>(), interesting_bytes()).prop_map(|(i, b)| Edit::Insert(i, b)),
        2 => any::<Index>().prop_map(Edit::Delete),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Replace(i, b)),
        1 => any::<Index>().prop_map(Edit::Truncate),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(i, j)| Edit::Swap(i, j)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for e in edits {
        let n = bytes.len();
        match e {
            Edit::Insert(i, b) => {
                let at = i.index(n + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Edit::Delete(i) if n > 0 => {
                bytes.remove(i.index(n));
            }
            Edit::Replace(i, b) if n > 0 => bytes[i.index(n)] = *b,
            Edit::Truncate(i) => bytes.truncate(i.index(n + 1)),
            Edit::Swap(i, j) if n > 0 => bytes.swap(i.index(n), j.index(n)),
            _ => {}
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 4096,
        max_shrink_iters: 20_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn documents_parse_like_serde_json(doc in document()) {
        agree(doc.as_bytes())?;
    }

    #[test]
    fn near_json_is_accepted_and_rejected_like_serde_json(
        doc in document(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        agree(&apply(&doc, &edits))?;
    }

    #[test]
    fn random_bytes_are_accepted_and_rejected_like_serde_json(
        bytes in prop::collection::vec(
            prop::sample::select(b"{}[]:,\"\\ -.e01tfnul\xc3\xa9".to_vec()),
            0..24,
        ),
    ) {
        agree(&bytes)?;
    }

    /// Objects made of repeats of a few keys: `get` and `to_value` keep the last.
    #[test]
    fn duplicate_keys_keep_the_last(
        fields in prop::collection::vec((0usize..3, any::<i32>()), 1..12),
    ) {
        let names = ["a", "\\u0061", "b"];
        let text = format!(
            "{{{}}}",
            fields
                .iter()
                .map(|(k, v)| format!("\"{}\":{v}", names[*k]))
                .collect::<Vec<_>>()
                .join(",")
        );
        agree(text.as_bytes())?;
        let v = json::parse(text.as_bytes()).expect("valid");
        let last_a = fields.iter().rev().find(|(k, _)| *k < 2).map(|(_, v)| i64::from(*v));
        let got = json::get(&v, "a").map(|a| match Json::of(a) {
            Json::Int(i) => i,
            other => panic!("{other:?}"),
        });
        prop_assert_eq!(got, last_a);
    }
}

// ---------------------------------------------------------------------------------------
// The intentional differences, and cases worth naming
// ---------------------------------------------------------------------------------------

#[test]
fn numbers_beyond_f64_are_rejected() {
    for text in ["1e309", "-1e400", "[1.8e308]", "{\"a\":123e999}"] {
        let err = json::parse(text.as_bytes()).expect_err(text);
        assert_eq!(err.message, "number out of range", "{text}");
        // serde_json as built here (arbitrary_precision) keeps the text.
        let theirs: Value = serde_json::from_str(text).expect(text);
        assert!(out_of_range(&theirs), "{text}");
    }
    // Tiny numbers round to zero, as in serde_json without arbitrary_precision.
    let float = |text: &[u8]| match Json::of(&json::parse(text).expect("valid")) {
        Json::Float(f) => f,
        other => panic!("{other:?}"),
    };
    assert_eq!(float(b"1e-400").to_bits(), 0.0f64.to_bits());
    assert_eq!(float(b"-1e-400").to_bits(), (-0.0f64).to_bits());
    assert_eq!(float(b"1.7976931348623157e308"), f64::MAX);
}

#[test]
fn numbers_compare_by_value_not_text() {
    let mine = json::parse(b"[2.50, 1E2, 18446744073709551615, 7]").expect("valid");
    let Json::Array(items) = Json::of(&mine) else {
        panic!("an array")
    };
    let items: Vec<String> = items.iter().map(|v| format!("{:?}", Json::of(v))).collect();
    assert_eq!(
        items,
        [
            "Float(2.5)",
            "Float(100.0)",
            "Float(1.8446744073709552e19)",
            "Int(7)"
        ]
    );
    let shown = json::to_text(&mine);
    assert_eq!(shown, "[2.5,100.0,1.8446744073709552e+19,7]");
    let again = json::parse(shown.as_bytes()).expect(&shown);
    assert_eq!(json::to_value(&again), json::to_value(&mine));
}

#[test]
fn nesting_is_bounded_at_max_depth() {
    let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    assert!(json::parse(nested(MAX_DEPTH).as_bytes()).is_ok());
    let err = json::parse(nested(MAX_DEPTH + 1).as_bytes()).expect_err("too deep");
    assert!(err.message.contains("nested deeper than 64"), "{err}");
    assert_eq!(err.offset, MAX_DEPTH);
    // serde_json allows 127.
    assert!(serde_json::from_str::<Value>(&nested(127)).is_ok());
    assert!(serde_json::from_str::<Value>(&nested(128)).is_err());
    let objects = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
    assert!(json::parse(objects(MAX_DEPTH).as_bytes()).is_ok());
    assert!(json::parse(objects(MAX_DEPTH + 1).as_bytes()).is_err());

    // The pre-check for parsers without a bound (sonic-rs): the same limit, strings skipped.
    for n in [MAX_DEPTH, MAX_DEPTH + 1, 100_000] {
        for text in [nested(n), objects(n)] {
            assert_eq!(
                json::nesting_within(text.as_bytes(), MAX_DEPTH),
                n <= MAX_DEPTH
            );
        }
    }
    let brackets_in_strings = format!(
        r#"[{{"{}\"[": "\\", "b": ["{}"]}}]"#,
        "[{".repeat(100),
        "{".repeat(100)
    );
    assert!(json::parse(brackets_in_strings.as_bytes()).is_ok());
    assert!(json::nesting_within(brackets_in_strings.as_bytes(), 3));
    assert!(!json::nesting_within(brackets_in_strings.as_bytes(), 2));
    let unclosed = "[".repeat(MAX_DEPTH + 1);
    assert!(!json::nesting_within(unclosed.as_bytes(), MAX_DEPTH));
}

#[test]
fn negative_zero_reads_as_in_serde_json() {
    // sonic-rs 0.5.10 reads every spelling of negative zero as +0.0; refold corrects it:
    // `-0` is the integer 0, the others the float -0.0 (as serde_json and Python read them).
    for (text, want) in [
        ("-0", "0"),
        ("-0.0", "-0.0"),
        ("-0e5", "-0.0"),
        ("-0.000E-3", "-0.0"),
        ("-0.0e-0", "-0.0"),
        ("0.0", "0.0"),
        ("-0.5", "-0.5"),
        (
            r#"[-0,-0.0,"-0","a:-0.0",{"-0":-0}]"#,
            r#"[0,-0.0,"-0","a:-0.0",{"-0":0}]"#,
        ),
        (" -0 ", "0"),
        ("[\"\\\"-0\", -0.0]", "[\"\\\"-0\",-0.0]"),
    ] {
        let mine = json::parse(text.as_bytes()).expect(text);
        assert_eq!(json::to_text(&mine), want, "{text}");
        let theirs: Value = serde_json::from_str(text).expect(text);
        assert_eq!(norm(&json::to_value(&mine)), norm(&theirs), "{text}");
    }
}

#[test]
fn named_cases_agree() {
    for text in [
        "-0",
        "-0.0",
        "[-0]",
        "{\"a\":-0e1,\"b\":\"x-0 \"}",
        r#"{"a":1,"a":2}"#,
        r#"{"a":1,"\u0061":{"b":[]},"a":3,"b":null}"#,
        r#""\ud83d\ude00\uD83D\uDE00""#,
        r#""\ud83d""#,
        r#""\ude00""#,
        r#""\ud83d\u0041""#,
        r#""\ud83d\ud83d""#,
        r#""\ud83dx""#,
        "\"\\u0000\"",
        "\"\u{7f}\"",
        "\"\x1f\"",
        "\u{feff}1",
        " \t\n\r[ \t\n\r1 \t\n\r] \t\n\r",
        "\x0c1",
        "-",
        "-0.0e-0",
        "1.e1",
        "01.5",
        "[1,]",
        "{\"a\":1,}",
        "[1 2]",
        "nul",
        "nulll",
        "truefalse",
        "\"\\u00e9\\/\"",
        "\"a\\\"",
        "",
        " ",
    ] {
        agree(text.as_bytes()).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    }
    for bytes in [
        &b"\"\xc3\""[..],
        b"\"\xed\xa0\x80\"",
        b"\"\xff\"",
        b"[\"\xc3\xa9\"]",
        b"\xff",
    ] {
        agree(bytes).unwrap_or_else(|e| panic!("{bytes:?}: {e}"));
    }
}
