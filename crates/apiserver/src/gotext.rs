//! Go's text forms that a real API server's messages carry, so the test bed's
//! messages read the same: `strconv.Quote` (`%q`), `%+v` of a decoded JSON
//! document (`map[spec:map[replicas:three]]`), and `%#v` of one.
//!
//! Owns these renderings only. It must not decide what an error says.

use serde_json::Value;

/// Go's `strconv.Quote`: double quotes, `\"`, `\\`, and escapes for control
/// characters (`\n`, `\x1b`, `\u2028` stays printable as Go keeps it only when
/// `unicode.IsPrint`; other non-printables are escaped).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                let n = c as u32;
                if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number as Go prints the `int64` or `float64` it decodes to
/// (`%v`: `3`, `1.5`, `1e+06`).
fn number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    go_float(f)
}

/// `strconv.FormatFloat(f, 'g', -1, 64)`: the shortest form, with an exponent
/// when it is below -4 or at least 21 (Go's `%v` switches at 1e21).
fn go_float(f: f64) -> String {
    if f == 0.0 {
        return "0".into();
    }
    let exp = f.abs().log10().floor() as i32;
    if !(-4..21).contains(&exp) {
        let s = format!("{f:e}");
        let (mantissa, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        let sign = if e < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", e.abs());
    }
    format!("{f}")
}

/// Go's `%+v` (and `%v`) of a JSON document decoded into `interface{}`:
/// maps with sorted keys as `map[k:v]`, lists as `[a b]`, strings bare,
/// `null` as `<nil>`.
pub fn plus_v(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number(n),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(plus_v).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", plus_v(&m[k.as_str()])))
                .collect();
            format!("map[{}]", items.join(" "))
        }
    }
}

/// Go's `%#v` of a JSON document decoded into `interface{}`
/// (`map[string]interface {}{"b":1}`, `[]interface {}{"x"}`).
pub fn sharp_v(v: &Value) -> String {
    match v {
        Value::Null => "interface {}(nil)".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number(n),
        Value::String(s) => quote(s),
        Value::Array(a) => format!(
            "[]interface {{}}{{{}}}",
            a.iter().map(sharp_v).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", quote(k), sharp_v(&m[k.as_str()])))
                .collect();
            format!("map[string]interface {{}}{{{}}}", items.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quote_escapes_like_strconv_quote() {
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quote("x\ny\u{1b}[2J"), r#""x\ny\x1b[2J""#);
        assert_eq!(quote("größe"), "\"größe\"");
    }

    #[test]
    fn plus_v_prints_maps_sorted_like_go() {
        let patch = json!({"spec": {"replicas": "three", "a": [1, 2.5, true, null]}});
        assert_eq!(
            plus_v(&patch),
            "map[spec:map[a:[1 2.5 true <nil>] replicas:three]]"
        );
        assert_eq!(plus_v(&json!(1e21)), "1e+21");
        assert_eq!(plus_v(&json!(0.5)), "0.5");
    }

    #[test]
    fn sharp_v_prints_go_syntax() {
        assert_eq!(
            sharp_v(&json!({"b": 1, "a": ["x"]})),
            r#"map[string]interface {}{"a":[]interface {}{"x"}, "b":1}"#
        );
    }
}
