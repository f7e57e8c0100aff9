//! Python's `json.dumps`, byte for byte. MLflow's server writes some strings with it that
//! clients compare exactly: the `mlflow.modelVersions` tag of a logged model (default
//! separators) and the value quoted in a request-validation message (`separators=(",", ":")`,
//! `sort_keys=True`). serde_json writes other separators, other float spellings (`1e16` where
//! Python writes `1e+16`) and leaves non-ASCII characters unescaped.
//!
//! Object keys are written in the order serde_json's map holds them, which (without its
//! `preserve_order` feature) is sorted: what `sort_keys=True` writes, and the order MLflow's own
//! dictionaries of this kind (`{"name", "version"}`) are written in anyway.

use std::fmt::Write;

use serde_json::Value;

/// The separators `json.dumps` is called with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Separators {
    /// `", "` and `": "`, Python's default.
    Default,
    /// `","` and `":"`.
    Compact,
}

impl Separators {
    fn items(self) -> &'static str {
        match self {
            Separators::Default => ", ",
            Separators::Compact => ",",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Separators::Default => ": ",
            Separators::Compact => ":",
        }
    }
}

/// `json.dumps(value, separators=…)` with Python's defaults otherwise (`ensure_ascii=True`,
/// `allow_nan=True`).
pub fn dumps(value: &Value, separators: Separators) -> String {
    let mut out = String::new();
    write_value(&mut out, value, separators);
    out
}

/// The name of the Python type `json.loads` gives the value, as `type(value).__name__` says it.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

fn write_value(out: &mut String, value: &Value, separators: Separators) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_f64().filter(|_| n.is_f64()) {
            Some(f) => out.push_str(&float_repr(f)),
            None => out.push_str(&n.to_string()),
        },
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(separators.items());
                }
                write_value(out, item, separators);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(separators.items());
                }
                write_string(out, key);
                out.push_str(separators.key());
                write_value(out, item, separators);
            }
            out.push('}');
        }
    }
}

/// `ensure_ascii`: everything outside printable ASCII as `\uXXXX` (lowercase hex, astral
/// characters as surrogate pairs), with the short escapes Python uses.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: the shortest digits that round-trip, positional for decimal
/// exponents from -4 to 15, otherwise scientific with a signed exponent of at least two digits.
fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits: `1.5e-5`, `-0e0`.
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("`{:e}` always writes an exponent");
    let exponent: i32 = exponent.parse().expect("`{:e}` writes a decimal exponent");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let body = if (-4..16).contains(&exponent) {
        if exponent < 0 {
            format!("0.{}{digits}", "0".repeat((-exponent - 1) as usize))
        } else {
            let whole = exponent as usize + 1;
            if digits.len() > whole {
                format!("{}.{}", &digits[..whole], &digits[whole..])
            } else {
                format!("{digits}{}.0", "0".repeat(whole - digits.len()))
            }
        }
    } else {
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{exp_sign}{:02}", exponent.unsigned_abs())
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_separators_as_mlflow_writes_its_model_versions_tag() {
        let tag = json!([{"name": "m", "version": 1}, {"name": "m", "version": "2"}]);
        assert_eq!(
            dumps(&tag, Separators::Default),
            r#"[{"name": "m", "version": 1}, {"name": "m", "version": "2"}]"#
        );
    }

    #[test]
    fn compact_sorted_as_in_validation_messages() {
        let value = json!({"b": [1, 2.5], "a": null, "c": true});
        assert_eq!(
            dumps(&value, Separators::Compact),
            r#"{"a":null,"b":[1,2.5],"c":true}"#
        );
    }

    #[test]
    fn strings_escape_everything_outside_printable_ascii() {
        let value = json!("é\"\\\n\t\u{1}\u{7f}😀 ok");
        assert_eq!(
            dumps(&value, Separators::Default),
            r#""\u00e9\"\\\n\t\u0001\u007f\ud83d\ude00 ok""#
        );
    }

    #[test]
    fn floats_as_python_repr_writes_them() {
        // Each pair was checked against CPython 3.11's json.dumps.
        let cases = [
            (9.0, "9.0"),
            (0.1, "0.1"),
            (-0.0, "-0.0"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (123.456, "123.456"),
            (1e-300, "1e-300"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (f, want) in cases {
            assert_eq!(float_repr(f), want, "{f:e}");
        }
    }

    #[test]
    fn python_type_names() {
        let names: Vec<&str> = [
            json!(null),
            json!(true),
            json!(31),
            json!(9.0),
            json!("x"),
            json!([]),
            json!({}),
        ]
        .iter()
        .map(type_name)
        .collect();
        assert_eq!(
            names,
            ["NoneType", "bool", "int", "float", "str", "list", "dict"]
        );
    }
}
