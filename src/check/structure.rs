//! Schema and reference checks of a parsed program: unknown type, unknown property, missing required
//! property, wrong type (numbers and booleans coerce to strings, as in Pulumi YAML), a reference to an
//! unknown output, a dangling reference, and a dependency cycle between resources.
use serde_yaml::{Mapping, Value};
use std::collections::{BTreeMap, BTreeSet};

use super::expr::{self, Reference};
use super::schema::{Prop, Schema, Ty};
use super::Finding;

const TOP_KEYS: &[&str] = &[
    "name",
    "runtime",
    "description",
    "requiredPulumiVersion",
    "config",
    "variables",
    "resources",
    "outputs",
    "packages",
];
const RESOURCE_KEYS: &[&str] = &["type", "properties", "options", "get", "defaultProvider"];
const OPTION_KEYS: &[&str] = &[
    "additionalSecretOutputs",
    "aliases",
    "customTimeouts",
    "deleteBeforeReplace",
    "dependsOn",
    "ignoreChanges",
    "import",
    "parent",
    "protect",
    "provider",
    "providers",
    "version",
    "pluginDownloadURL",
    "replaceOnChanges",
    "retainOnDelete",
    "deletedWith",
    "hideDiffs",
    "replaceWith",
];
/// Outputs every resource has.
const BUILTIN_OUTPUTS: &[&str] = &["id", "urn"];

/// What a `${name}` can point at.
enum Target<'a> {
    Resource(&'a str),
    Config(Ty),
    Other,
}

pub(super) struct Checker<'a> {
    schema: &'a Schema,
    /// Resource name → type token.
    resources: BTreeMap<String, String>,
    config: BTreeMap<String, Ty>,
    variables: BTreeSet<String>,
    pub findings: Vec<Finding>,
}

impl<'a> Checker<'a> {
    pub(super) fn new(schema: &'a Schema, doc: &Mapping) -> Self {
        let names = |key: &str| -> Vec<(String, Value)> {
            doc.get(key)
                .and_then(Value::as_mapping)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.clone())))
                        .collect()
                })
                .unwrap_or_default()
        };
        let resources = names("resources")
            .into_iter()
            .map(|(n, v)| {
                (n, v.get("type").and_then(Value::as_str).unwrap_or_default().to_string())
            })
            .collect();
        let config = names("config")
            .into_iter()
            .map(|(n, v)| {
                let ty = match v.get("type").and_then(Value::as_str) {
                    Some("string") => Ty::String(None),
                    Some("integer") | Some("number") => Ty::Number,
                    Some("boolean") => Ty::Boolean,
                    _ => Ty::Any,
                };
                (n, ty)
            })
            .collect();
        let variables = names("variables").into_iter().map(|(n, _)| n).collect();
        Checker { schema, resources, config, variables, findings: vec![] }
    }

    fn add(&mut self, rule: &str, path: &str, message: String) {
        self.findings.push(Finding::error(rule, path, message));
    }

    /// Run every structural check over `doc`.
    pub(super) fn run(&mut self, doc: &Mapping) {
        for key in doc.keys().filter_map(Value::as_str) {
            if !TOP_KEYS.contains(&key) {
                self.add(
                    "unknown-property",
                    key,
                    format!("`{key}` is not a Pulumi YAML program section"),
                );
            }
        }
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let resources =
            doc.get("resources").and_then(Value::as_mapping).cloned().unwrap_or_default();
        for (name, body) in &resources {
            let Some(name) = name.as_str() else { continue };
            let path = format!("resources.{name}");
            let mut refs = vec![];
            self.resource(name, body, &path, &mut refs);
            edges.insert(
                name.to_string(),
                refs.into_iter().filter(|r| self.resources.contains_key(r) && r != name).collect(),
            );
        }
        for section in ["variables", "outputs"] {
            if let Some(map) = doc.get(section).and_then(Value::as_mapping) {
                for (k, v) in map {
                    let path = format!("{section}.{}", k.as_str().unwrap_or_default());
                    self.references(v, &path, &mut vec![]);
                }
            }
        }
        self.cycles(&edges);
    }

    fn resource(&mut self, name: &str, body: &Value, path: &str, refs: &mut Vec<String>) {
        let Some(body) = body.as_mapping() else {
            return self.add(
                "wrong-type",
                path,
                "a resource must be a mapping with `type` and `properties`".into(),
            );
        };
        for key in body.keys().filter_map(Value::as_str) {
            if !RESOURCE_KEYS.contains(&key) {
                self.add(
                    "unknown-property",
                    &format!("{path}.{key}"),
                    format!("`{key}` is not a resource field"),
                );
            }
        }
        let token = self.resources.get(name).cloned().unwrap_or_default();
        let props = body.get("properties").cloned().unwrap_or(Value::Mapping(Mapping::new()));
        let ppath = format!("{path}.properties");
        match self.schema.resources.get(&token) {
            None if token.starts_with("pulumi:providers:") => {}
            None => self.add(
                "unknown-type",
                &format!("{path}.type"),
                format!("unknown resource type `{token}` (not in schema/aws-native.json)"),
            ),
            Some(resource) => self.object(&props, &resource.inputs, &ppath),
        }
        self.references(&props, &ppath, refs);
        if let Some(options) = body.get("options") {
            let opath = format!("{path}.options");
            if let Some(map) = options.as_mapping() {
                for key in map.keys().filter_map(Value::as_str) {
                    if !OPTION_KEYS.contains(&key) {
                        self.add(
                            "unknown-property",
                            &format!("{opath}.{key}"),
                            format!("`{key}` is not a resource option"),
                        );
                    }
                }
            }
            self.references(options, &opath, refs);
        }
    }

    /// Type-check `value` against an object's properties.
    fn object(&mut self, value: &Value, props: &BTreeMap<String, Prop>, path: &str) {
        let Some(map) = value.as_mapping() else {
            return self.value(value, &Ty::Object(props.clone()), path);
        };
        for (k, v) in map {
            let key = k.as_str().unwrap_or_default();
            let kpath = format!("{path}.{key}");
            match props.get(key) {
                Some(prop) => self.value(v, &prop.ty, &kpath),
                None => {
                    let hint = props
                        .keys()
                        .find(|p| p.eq_ignore_ascii_case(key))
                        .map(|p| format!("; did you mean `{p}`?"))
                        .unwrap_or_default();
                    self.add("unknown-property", &kpath, format!("unknown property `{key}`{hint}"));
                }
            }
        }
        for (name, prop) in props {
            if prop.required && !map.contains_key(name.as_str()) {
                self.add(
                    "missing-required",
                    &format!("{path}.{name}"),
                    format!("required property `{name}` is missing"),
                );
            }
        }
    }

    fn value(&mut self, value: &Value, ty: &Ty, path: &str) {
        let ty = self.schema.resolve(ty).clone();
        if let Some(actual) = self.expression_type(value) {
            if !compatible(self.schema, &actual, &ty) {
                self.add(
                    "wrong-type",
                    path,
                    format!("expected {}, got {}", ty.describe(), actual.describe()),
                );
            }
            return;
        }
        match (&ty, value) {
            (Ty::Any, _) => {}
            (Ty::String(allowed), Value::String(s)) => {
                if let Some(allowed) = allowed.as_ref().filter(|_| !s.contains("${")) {
                    if !allowed.contains(s) {
                        self.add(
                            "wrong-type",
                            path,
                            format!("`{s}` is not one of {}", allowed.join(", ")),
                        );
                    }
                }
            }
            (Ty::String(_), Value::Number(_) | Value::Bool(_)) => {}
            (Ty::Number, Value::Number(_)) | (Ty::Boolean, Value::Bool(_)) => {}
            (Ty::Array(items), Value::Sequence(seq)) => {
                for (i, item) in seq.iter().enumerate() {
                    self.value(item, items, &format!("{path}[{i}]"));
                }
            }
            (Ty::Object(props), Value::Mapping(_)) => self.object(value, props, path),
            (Ty::Map(inner), Value::Mapping(map)) => {
                for (k, v) in map {
                    self.value(v, inner, &format!("{path}.{}", k.as_str().unwrap_or_default()));
                }
            }
            (Ty::OneOf(parts), _) => {
                let before = self.findings.len();
                let fits = parts.iter().any(|part| {
                    self.value(value, part, path);
                    let ok = self.findings.len() == before;
                    self.findings.truncate(before);
                    ok
                });
                if !fits {
                    self.add("wrong-type", path, format!("expected {}", ty.describe()));
                }
            }
            (_, Value::Null) => {
                self.add("wrong-type", path, format!("expected {}, got null", ty.describe()));
            }
            _ => self.add(
                "wrong-type",
                path,
                format!("expected {}, got {}", ty.describe(), literal_type(value)),
            ),
        }
    }

    /// The type of a whole-string reference or a `fn::` call; `None` for a literal.
    fn expression_type(&self, value: &Value) -> Option<Ty> {
        if let Some(reference) = value.as_str().and_then(expr::whole) {
            return Some(self.reference_type(&reference).unwrap_or(Ty::Any));
        }
        let (name, _) = expr::function(value)?;
        Some(match name.as_str() {
            "tobase64" | "frombase64" | "join" | "tojson" | "readfile" | "stringasset" => {
                Ty::String(None)
            }
            "split" => Ty::Array(Box::new(Ty::String(None))),
            _ => Ty::Any,
        })
    }

    fn target(&self, root: &str) -> Option<Target<'_>> {
        if let Some(token) = self.resources.get(root) {
            return Some(Target::Resource(token));
        }
        if let Some(ty) = self.config.get(root) {
            return Some(Target::Config(ty.clone()));
        }
        (self.variables.contains(root) || root == "pulumi").then_some(Target::Other)
    }

    /// The type a reference evaluates to, if known.
    fn reference_type(&self, r: &Reference) -> Option<Ty> {
        match self.target(&r.root)? {
            Target::Config(ty) if r.path.is_empty() => Some(ty),
            Target::Resource(token) => {
                let resource = self.schema.resources.get(token)?;
                let first = r.path.first()?;
                let mut ty = resource.outputs.get(first)?.ty.clone();
                for part in &r.path[1..] {
                    ty = match self.schema.resolve(&ty) {
                        Ty::Object(props) => props.get(part)?.ty.clone(),
                        _ => return None,
                    };
                }
                Some(ty)
            }
            _ => None,
        }
    }

    /// Check every `${...}` under `value`; collect the roots into `refs`.
    fn references(&mut self, value: &Value, path: &str, refs: &mut Vec<String>) {
        match value {
            Value::String(s) => {
                for r in expr::references(s) {
                    self.reference(&r, path);
                    refs.push(r.root);
                }
            }
            Value::Sequence(seq) => seq
                .iter()
                .enumerate()
                .for_each(|(i, v)| self.references(v, &format!("{path}[{i}]"), refs)),
            Value::Mapping(map) => {
                for (k, v) in map {
                    self.references(v, &format!("{path}.{}", k.as_str().unwrap_or_default()), refs);
                }
            }
            _ => {}
        }
    }

    fn reference(&mut self, r: &Reference, path: &str) {
        match self.target(&r.root) {
            None => self.add(
                "dangling-reference",
                path,
                format!(
                    "`${{{}}}` refers to `{}`, which is not a resource, config key or variable",
                    r.text, r.root
                ),
            ),
            Some(Target::Resource(token)) => {
                let Some(resource) = self.schema.resources.get(token) else { return };
                let Some(first) = r.path.first() else { return };
                if BUILTIN_OUTPUTS.contains(&first.as_str()) {
                    return;
                }
                if self.reference_type(r).is_none() {
                    let known = if resource.outputs.contains_key(first) {
                        format!("`{}` has no `{}`", first, r.path[1..].join("."))
                    } else {
                        format!("`{token}` has no output `{first}`")
                    };
                    self.add("unknown-output", path, format!("`${{{}}}`: {known}", r.text));
                }
            }
            Some(_) => {}
        }
    }

    /// Report each dependency cycle once.
    fn cycles(&mut self, edges: &BTreeMap<String, BTreeSet<String>>) {
        let mut state: BTreeMap<&str, u8> = BTreeMap::new(); // 1 on the stack, 2 done
        let mut reported = BTreeSet::new();
        for start in edges.keys() {
            let mut stack = vec![];
            self.visit(start, edges, &mut state, &mut stack, &mut reported);
        }
    }

    fn visit<'e>(
        &mut self,
        node: &'e str,
        edges: &'e BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<&'e str, u8>,
        stack: &mut Vec<&'e str>,
        reported: &mut BTreeSet<Vec<String>>,
    ) {
        match state.get(node) {
            Some(2) => return,
            Some(1) => {
                let from = stack.iter().position(|n| *n == node).unwrap_or(0);
                let mut cycle: Vec<String> = stack[from..].iter().map(|s| s.to_string()).collect();
                let mut key = cycle.clone();
                key.sort();
                if reported.insert(key) {
                    cycle.push(node.to_string());
                    self.add(
                        "cycle",
                        &format!("resources.{}", cycle[0]),
                        format!("dependency cycle: {}", cycle.join(" -> ")),
                    );
                }
                return;
            }
            _ => {}
        }
        state.insert(node, 1);
        stack.push(node);
        if let Some(next) = edges.get(node) {
            for n in next {
                self.visit(n, edges, state, stack, reported);
            }
        }
        stack.pop();
        state.insert(node, 2);
    }
}

/// Can a value of type `actual` go where `expected` is wanted? Numbers and booleans coerce to strings.
fn compatible(schema: &Schema, actual: &Ty, expected: &Ty) -> bool {
    match (schema.resolve(actual), schema.resolve(expected)) {
        (Ty::Any, _) | (_, Ty::Any) => true,
        (Ty::OneOf(parts), e) => parts.iter().any(|p| compatible(schema, p, e)),
        (a, Ty::OneOf(parts)) => parts.iter().any(|p| compatible(schema, a, p)),
        (Ty::String(_) | Ty::Number | Ty::Boolean, Ty::String(_)) => true,
        (Ty::Number, Ty::Number) | (Ty::Boolean, Ty::Boolean) => true,
        (Ty::Array(a), Ty::Array(e)) => compatible(schema, a, e),
        (Ty::Object(_) | Ty::Map(_), Ty::Object(_) | Ty::Map(_)) => true,
        _ => false,
    }
}

fn literal_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "an object",
        Value::Null => "null",
        Value::Tagged(_) => "a tagged value",
    }
}
