//! Pulumi YAML expressions inside strings: `${name}`, `${name.prop.sub}`, `${name.list[0]}`; `$${` is a
//! literal `${`. Also the shape of a value (literal, whole-string reference, interpolation, `fn::` call).
use serde_yaml::Value;

/// One `${...}` reference: the root name and the property path after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reference {
    pub root: String,
    pub path: Vec<String>,
    pub text: String,
}

/// Every `${...}` in `s`.
pub(super) fn references(s: &str) -> Vec<Reference> {
    let mut out = vec![];
    let bytes = s.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b'$' && bytes[i + 1] == b'$' {
            i += 2;
            continue;
        }
        if bytes[i] == b'$' && bytes[i + 1] == b'{' {
            if let Some(end) = s[i + 2..].find('}') {
                let text = &s[i + 2..i + 2 + end];
                out.push(parse(text));
                i += 3 + end;
                continue;
            }
        }
        i += 1;
    }
    out
}

fn parse(text: &str) -> Reference {
    let mut parts = text.split('.').map(|p| p.split('[').next().unwrap_or(p).trim().to_string());
    let root = parts.next().unwrap_or_default();
    Reference { root, path: parts.filter(|p| !p.is_empty()).collect(), text: text.to_string() }
}

/// The reference if `s` is exactly one `${...}` and nothing else.
pub(super) fn whole(s: &str) -> Option<Reference> {
    let inner = s.strip_prefix("${")?.strip_suffix('}')?;
    if inner.contains('}') || inner.contains("${") {
        return None;
    }
    Some(parse(inner))
}

/// The function name if `v` is a `fn::` call (a one-key mapping `fn::name: args`).
pub(super) fn function(v: &Value) -> Option<(String, &Value)> {
    let map = v.as_mapping()?;
    if map.len() != 1 {
        return None;
    }
    let (k, args) = map.iter().next()?;
    let name = k.as_str()?.to_ascii_lowercase();
    name.strip_prefix("fn::").map(|n| (n.to_string(), args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_references_and_skips_escapes() {
        let refs = references("a ${vpc.vpcId} $${literal} ${db.endpoint.address}:${x[0].y}");
        let texts: Vec<_> = refs.iter().map(|r| (r.root.as_str(), r.path.join("."))).collect();
        assert_eq!(
            texts,
            vec![
                ("vpc", "vpcId".to_string()),
                ("db", "endpoint.address".to_string()),
                ("x", "y".to_string())
            ]
        );
        assert_eq!(whole("${alb.dnsName}").map(|r| r.path), Some(vec!["dnsName".to_string()]));
        assert!(whole("https://${alb.dnsName}").is_none());
    }
}
