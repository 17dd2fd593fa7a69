//! One literal value against one [`Constraint`] (enum, range, length, pattern, CIDR size, byte size),
//! and the values of a program at a constraint's path: shared by [`super::limits`] (generated from
//! the schemas) and [`super::api_limits`] (the API references).
use regex::Regex;
use serde::Deserialize;
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// What one property accepts (any subset of the keywords).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Constraint {
    #[serde(rename = "enum")]
    pub(super) one_of: Option<Vec<serde_json::Value>>,
    pub(super) minimum: Option<f64>,
    pub(super) maximum: Option<f64>,
    pub(super) pattern: Option<String>,
    pub(super) min_length: Option<usize>,
    pub(super) max_length: Option<usize>,
    /// With `enum`: a value outside it is still accepted when a multiple of this.
    pub(super) or_multiple_of: Option<i64>,
    /// An IPv4 CIDR whose prefix length lies in `[min, max]`.
    pub(super) cidr_prefix: Option<[u8; 2]>,
    /// At most this many bytes (UTF-8).
    pub(super) max_bytes: Option<usize>,
}

/// A registry-schema (ECMA-262) pattern as a Rust regex: `\Z` is Python's end of text, and a `[`
/// inside a class is a literal there but opens a nested class in Rust. None if it cannot compile
/// (look-around, back-references): such a pattern is not checked.
pub fn schema_regex(p: &str) -> Option<Regex> {
    static CACHE: OnceLock<std::sync::Mutex<BTreeMap<String, Option<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().ok()?;
    cache.entry(p.to_string()).or_insert_with(|| Regex::new(&rust_syntax(p)).ok()).clone()
}

fn rust_syntax(p: &str) -> String {
    let (mut out, mut class, mut chars) = (String::new(), false, p.chars());
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('Z') => out.push_str("\\z"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '[' if class => out.push_str("\\["),
            '[' => {
                class = true;
                out.push('[');
            }
            ']' if class => {
                class = false;
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    out
}

/// The literal text of a scalar, None for references (`${…}`) and non-scalars.
pub(super) fn literal(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if s.contains("${") => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Why `value` breaks `c`, if it does: every keyword it breaks.
pub(super) fn violation(c: &Constraint, value: &Value) -> Option<String> {
    let text = literal(value)?;
    let number = text.trim().parse::<f64>().ok();
    let mut why = vec![];
    if let Some(allowed) = &c.one_of {
        let ok = allowed.iter().any(|a| match a {
            serde_json::Value::String(s) => *s == text,
            serde_json::Value::Number(n) => n.as_f64() == number,
            serde_json::Value::Bool(b) => b.to_string() == text,
            _ => false,
        }) || c.or_multiple_of.is_some_and(|m| {
            number.is_some_and(|n| n.fract() == 0.0 && n > 0.0 && (n as i64) % m == 0)
        });
        if !ok {
            let list: Vec<String> =
                allowed.iter().map(|a| a.as_str().map_or(a.to_string(), str::to_string)).collect();
            let or = c.or_multiple_of.map_or(String::new(), |m| format!(" or a multiple of {m}"));
            why.push(format!("`{text}` is not one of {}{or}", list.join(", ")));
        }
    }
    if let Some(n) = number.filter(|_| c.minimum.is_some() || c.maximum.is_some()) {
        if c.minimum.is_some_and(|m| n < m) || c.maximum.is_some_and(|m| n > m) {
            let bound = |b: Option<f64>| b.map_or("…".into(), |b| b.to_string());
            why.push(format!("{text} is outside {}–{}", bound(c.minimum), bound(c.maximum)));
        }
    }
    let len = text.chars().count();
    if c.min_length.is_some_and(|m| len < m) || c.max_length.is_some_and(|m| len > m) {
        let hi = c.max_length.map_or("…".into(), |m| m.to_string());
        why.push(format!("{len} characters, outside {}–{hi}", c.min_length.unwrap_or(0)));
    }
    if let Some(re) = c.pattern.as_deref().and_then(schema_regex) {
        if !re.is_match(&text) {
            why.push(format!("`{text}` does not match {}", c.pattern.as_deref().unwrap_or("")));
        }
    }
    if let Some([lo, hi]) = c.cidr_prefix {
        let prefix = cidr(&text).map(|n| n.prefix_len());
        if prefix.is_none_or(|p| p < lo || p > hi) {
            why.push(format!("`{text}` is not an IPv4 CIDR block from /{lo} to /{hi}"));
        }
    }
    if c.max_bytes.is_some_and(|m| text.len() > m) {
        why.push(format!("{} bytes, more than {}", text.len(), c.max_bytes.unwrap_or(0)));
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// An IPv4 CIDR block; None if `text` is none.
pub(super) fn cidr(text: &str) -> Option<ipnet::Ipv4Net> {
    text.parse().ok()
}

/// Every value at `path` (`a.b[].c`; `a[key=K].value` picks the items whose `key` is K) under `v`,
/// with its program path.
pub(super) fn at<'v>(v: &'v Value, path: &str, shown: String, out: &mut Vec<(String, &'v Value)>) {
    let i = path.find(['.', '[']).unwrap_or(path.len());
    let (key, select, rest) = if path[i..].starts_with('[') {
        let Some(close) = path[i..].find(']').map(|c| i + c) else { return };
        (&path[..i], Some(&path[i + 1..close]), path[close + 1..].trim_start_matches('.'))
    } else {
        (&path[..i], None, path.get(i + 1..).unwrap_or(""))
    };
    let Some(child) = v.get(key) else { return };
    let mut visit = |item: &'v Value, shown: String| match rest {
        "" => out.push((shown, item)),
        r => at(item, r, shown, out),
    };
    match select {
        None => visit(child, format!("{shown}.{key}")),
        Some(sel) => {
            let want = sel.split_once('=');
            for (i, item) in child.as_sequence().into_iter().flatten().enumerate() {
                let ok = want.is_none_or(|(k, w)| {
                    item.get(k).and_then(literal).is_some_and(|have| have == w)
                });
                if ok {
                    visit(item, format!("{shown}.{key}[{i}]"));
                }
            }
        }
    }
}

/// Every resource `(name, token, properties)` of the program.
pub(super) fn resources(doc: &Mapping) -> impl Iterator<Item = (&str, &str, &Value)> {
    doc.get("resources")
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
        .filter_map(|(n, b)| Some((n.as_str()?, b.get("type")?.as_str()?, b.get("properties")?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecma_patterns_become_rust_regexes() {
        let re = schema_regex(r"^([a-z,A-Z,0-9,. _\-:/()#,@[\]+=&;\{\}!$*])*$").unwrap();
        assert!(re.is_match("orch prod [db]") && !re.is_match("~"));
        assert!(schema_regex(r"^[.\-_/#A-Za-z0-9]{1,512}\Z").unwrap().is_match("/orch/app"));
    }

    #[test]
    fn keyed_items_are_selected() {
        let v: Value =
            serde_yaml::from_str("{a: [{key: x.y, value: 1}, {key: z, value: 2}]}").unwrap();
        let mut out = vec![];
        at(&v, "a[key=x.y].value", "p".into(), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, "p.a[0].value");
    }
}
