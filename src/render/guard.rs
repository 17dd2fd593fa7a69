//! The last line before rendering: every string the templates can emit without escaping (plain
//! `{{x}}`, used inside larger strings and in the user-data script) must be in the plain charset,
//! which is safe unquoted in YAML and in a shell word. Config validation (`config::inputs`) refuses
//! bad stack values with their keys first; this guard holds for whatever builds the context, so a
//! new template variable cannot bypass it. Values emitted only through the escaping helpers (the
//! 404 page, the tags) are exempt.
use serde_json::Value;

use super::RenderError;

/// Context keys whose values reach the program only through `yaml`/`tags`.
const ESCAPED: [&str; 2] = ["page404", "tags"];

fn plain(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_alphanumeric() || b"._/:@%~+-".contains(&b))
}

/// The first string of `data` outside the plain charset, as an error naming its key.
pub(super) fn check(data: &Value) -> Result<(), RenderError> {
    walk(data, "")
}

fn walk(value: &Value, key: &str) -> Result<(), RenderError> {
    match value {
        Value::String(text) if !plain(text) => Err(RenderError::Unsafe {
            key: key.to_string(),
            value: text.escape_debug().to_string(),
        }),
        Value::Array(items) => {
            items.iter().enumerate().try_for_each(|(i, v)| walk(v, &format!("{key}[{i}]")))
        }
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| !(key.is_empty() && ESCAPED.contains(&k.as_str())))
            .try_for_each(|(k, v)| {
                walk(v, &if key.is_empty() { k.clone() } else { format!("{key}.{k}") })
            }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_quote_anywhere_but_in_the_escaped_keys_stops_the_render() {
        let ok = json!({"env": "dev", "zones": [{"name": "eu-west-1a"}], "page404": "<p>\"</p>", "tags": {"a b": "c'd"}});
        assert!(check(&ok).is_ok());
        let bad =
            json!({"env": "dev", "awsNativeVersion": "1.79.0\", pluginDownloadURL: \"https://x"});
        match check(&bad) {
            Err(RenderError::Unsafe { key, .. }) => assert_eq!(key, "awsNativeVersion"),
            other => panic!("{other:?}"),
        }
        let nested = json!({"zones": [{"name": "a"}, {"name": "b'; id"}]});
        assert!(
            matches!(check(&nested), Err(RenderError::Unsafe { key, .. }) if key == "zones[1].name")
        );
    }
}
