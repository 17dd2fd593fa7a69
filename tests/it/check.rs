//! `orch check`: every shipped AWS env is clean; each error kind and each policy rule has a fixture under
//! tests/fixtures/check/ (an edit of a rendered program) proving the injected violation is caught; the
//! binary's exit codes and output for a template edit.
use crate::support::{repo, Scratch};
use orch::project::Project;
use serde_yaml::Value;
use std::collections::BTreeSet;

fn program(env: &str) -> (String, orch::config::Stack) {
    let project = Project { root: repo() };
    let stack = orch::config::load(&project, env).expect("stack");
    (orch::render::render(&project, &stack).expect("render").program, stack)
}

fn aws_envs() -> Vec<String> {
    let project = Project { root: repo() };
    project
        .envs()
        .into_iter()
        .filter(|e| {
            orch::config::load(&project, e).is_ok_and(|s| s.target == orch::config::Target::Aws)
        })
        .collect()
}

#[test]
fn every_shipped_aws_env_passes_the_check() {
    let envs = aws_envs();
    assert!(envs.contains(&"prod".to_string()) && envs.contains(&"dev".to_string()), "{envs:?}");
    for env in envs {
        let (text, stack) = program(&env);
        let report = orch::check::check_program(&text, &stack);
        assert!(report.findings.is_empty(), "{env}: {:#?}", report.findings);
        assert!(report.resources > 30, "{env}: {} resources", report.resources);
    }
}

#[test]
fn check_prod_exits_0_and_json_is_empty() {
    let out = Scratch::new()
        .orch()
        .args(["check", "--env", "prod", "--json"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["findings"], serde_json::json!([]));
    assert_eq!(json["env"], "prod");
}

#[test]
fn renaming_target_group_arns_in_a_template_fails_prod_check_naming_it() {
    let scratch = Scratch::new();
    let path = "pulumi/partials/compute.hbs";
    let text = scratch.read(path);
    assert!(text.contains("targetGroupArns:"));
    scratch.write(path, &text.replace("targetGroupArns:", "targetGroupARNs:"));
    scratch.orch().args(["check", "--env", "prod"]).assert().code(1).stdout(
        predicates::str::contains("unknown-property\tresources.asg.properties.targetGroupARNs\t"),
    );
}

#[test]
fn findings_are_all_reported_at_once_in_json() {
    let scratch = Scratch::new();
    let path = "pulumi/partials/compute.hbs";
    let text = scratch
        .read(path)
        .replace("httpTokens: required", "httpTokens: optional")
        .replace("capacityRebalance: true", "capacityRebalanse: true");
    scratch.write(path, &text);
    let out = scratch
        .orch()
        .args(["check", "--env", "dev", "--json"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let rules: BTreeSet<&str> =
        json["findings"].as_array().unwrap().iter().map(|f| f["rule"].as_str().unwrap()).collect();
    assert_eq!(
        rules,
        BTreeSet::from(["imdsv2-required", "unknown-property", "capacity-rebalance"])
    );
}

#[test]
fn check_local_exits_2() {
    Scratch::new().orch().args(["check", "--env", "local"]).assert().code(2);
}

#[test]
fn numbers_and_booleans_coerce_to_strings() {
    let (text, stack) = program("prod");
    let text =
        text.replace("minSize: \"2\"", "minSize: 2").replace("value: \"true\"", "value: true");
    let report = orch::check::check_program(&text, &stack);
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}

/// A fixture: an env, edits to its rendered program, and the finding they must cause.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    env: String,
    expect: Expect,
    edits: Vec<Edit>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    rule: String,
    #[serde(default)]
    path: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Edit {
    #[serde(default)]
    set: Option<String>,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    remove: Option<String>,
    #[serde(default)]
    replace: Option<String>,
    #[serde(default)]
    with: Option<String>,
    /// Repeat the (string) `value` this many times.
    #[serde(default)]
    times: Option<usize>,
}

/// Walk `path` (dot-separated keys, list indices as numbers, `+` appends) to the parent and apply `f`.
fn edit(doc: &mut Value, path: &str, value: Option<Value>) {
    let parts: Vec<&str> = path.split('.').collect();
    let (last, parents) = parts.split_last().unwrap();
    let mut node = doc;
    for part in parents {
        node = match node {
            Value::Sequence(seq) => &mut seq[part.parse::<usize>().unwrap()],
            Value::Mapping(map) => {
                map.get_mut(*part).unwrap_or_else(|| panic!("no `{part}` in {path}"))
            }
            _ => panic!("cannot walk into {part} of {path}"),
        };
    }
    match (node, value) {
        (Value::Sequence(seq), Some(v)) if *last == "+" => seq.push(v),
        (Value::Sequence(seq), Some(v)) => seq[last.parse::<usize>().unwrap()] = v,
        (Value::Mapping(map), Some(v)) => {
            map.insert(Value::from(*last), v);
        }
        (Value::Mapping(map), None) => {
            assert!(map.remove(*last).is_some(), "nothing to remove at {path}");
        }
        _ => panic!("cannot edit {path}"),
    }
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut text = text.to_string();
    for e in edits.iter().filter(|e| e.replace.is_some()) {
        let from = e.replace.as_deref().unwrap();
        assert!(text.contains(from), "`{from}` not in the program");
        text = text.replacen(from, e.with.as_deref().unwrap_or_default(), 1);
    }
    if edits.iter().all(|e| e.replace.is_some()) {
        return text;
    }
    let mut doc: Value = serde_yaml::from_str(&text).unwrap();
    for e in edits {
        if let Some(path) = &e.set {
            let mut value = e.value.clone().expect("`set` needs a `value`");
            if let (Some(n), Some(s)) = (e.times, value.as_str()) {
                value = Value::from(s.repeat(n));
            }
            edit(&mut doc, path, Some(value));
        }
        if let Some(path) = &e.remove {
            edit(&mut doc, path, None);
        }
    }
    serde_yaml::to_string(&doc).unwrap()
}

#[test]
fn every_fixture_is_caught_and_every_rule_and_kind_has_one() {
    let dir = repo().join("tests/fixtures/check");
    let mut covered = BTreeSet::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
    files.sort();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let fixture: Fixture = serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (text, stack) = program(&fixture.env);
        let report = orch::check::check_program(&apply(&text, &fixture.edits), &stack);
        let hit = report.findings.iter().any(|f| {
            f.rule == fixture.expect.rule
                && fixture.expect.path.as_ref().is_none_or(|p| *p == f.path)
        });
        assert!(
            hit,
            "{name}: expected {} at {:?}, got {:#?}",
            fixture.expect.rule, fixture.expect.path, report.findings
        );
        covered.insert(fixture.expect.rule);
    }
    for rule in orch::check::RULES
        .iter()
        .chain(orch::check::CONTRACT_RULES)
        .chain(std::iter::once(&orch::check::IDLE_RULE))
        .map(|(r, _)| *r)
        .chain(
            orch::check::RELATION_RULES.iter().chain(orch::check::ACCESS_RULES).map(|(r, _, _)| *r),
        )
        .chain(orch::check::api_rules().into_iter().map(|(r, _)| r))
        .chain(orch::check::ERROR_KINDS.iter().copied())
    {
        assert!(covered.contains(rule), "no fixture for `{rule}` under tests/fixtures/check/");
    }
}

#[test]
fn a_stack_without_a_domain_renders_and_checks_clean() {
    let scratch = Scratch::new();
    let stack = scratch.read("stacks/dev.yaml");
    let without: String = stack
        .lines()
        .filter(|l| {
            !l.starts_with("domain:")
                && !l.starts_with("  name:")
                && !l.starts_with("  parent_zone:")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!without.contains("parent_zone"));
    scratch.write("stacks/dev.yaml", &without);
    scratch.orch().args(["check", "--env", "dev"]).assert().code(0);
    let program = scratch.read("build/dev/Pulumi.yaml");
    assert!(!program.contains("hostedZoneId") && !program.contains("aws:route53:Record"));
    assert!(program.contains("url: https://${alb.dnsName}"));
}

/// One step of a concrete path into the program: a key or a list index.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

/// The concrete locations of a constraint path (`a.b[].c`, `a[key=K].value`) under `v`.
fn locate(v: &Value, path: &str, here: Vec<Step>, out: &mut Vec<Vec<Step>>) {
    if path.is_empty() {
        out.push(here);
        return;
    }
    let i = path.find(['.', '[']).unwrap_or(path.len());
    let (key, select, rest) = if path[i..].starts_with('[') {
        let close = i + path[i..].find(']').unwrap();
        (&path[..i], Some(&path[i + 1..close]), path[close + 1..].trim_start_matches('.'))
    } else {
        (&path[..i], None, path.get(i + 1..).unwrap_or(""))
    };
    let Some(child) = v.get(key) else { return };
    let mut at = here.clone();
    at.push(Step::Key(key.into()));
    match select {
        None => locate(child, rest, at, out),
        Some(sel) => {
            for (i, item) in child.as_sequence().into_iter().flatten().enumerate() {
                let ok = sel.split_once('=').is_none_or(|(k, w)| {
                    item.get(k).and_then(scalar).is_some_and(|have| have == w)
                });
                if ok {
                    let mut at = at.clone();
                    at.push(Step::Index(i));
                    locate(item, rest, at, out);
                }
            }
        }
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.contains("${") => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn shown(steps: &[Step]) -> String {
    steps.iter().fold(String::new(), |acc, s| match s {
        Step::Key(k) if acc.is_empty() => k.clone(),
        Step::Key(k) => format!("{acc}.{k}"),
        Step::Index(i) => format!("{acc}[{i}]"),
    })
}

fn value_at<'v>(doc: &'v Value, steps: &[Step]) -> &'v Value {
    steps.iter().fold(doc, |v, s| match s {
        Step::Key(k) => &v[k.as_str()],
        Step::Index(i) => &v[*i],
    })
}

fn node<'v>(doc: &'v mut Value, steps: &[Step]) -> &'v mut Value {
    steps.iter().fold(doc, |v, s| match s {
        Step::Key(k) => v.get_mut(k.as_str()).unwrap(),
        Step::Index(i) => v.get_mut(*i).unwrap(),
    })
}

/// A value that breaks `keyword` of constraint `c`, in the shape (string or number) of `original`.
fn breaking(keyword: &str, c: &serde_json::Value, original: &Value) -> Option<Value> {
    let shaped = |n: f64| {
        if original.is_string() {
            Value::from(n.to_string())
        } else {
            Value::from(n as i64)
        }
    };
    let number = |k: &str| c[k].as_f64();
    Some(match keyword {
        "minimum" => shaped(number("minimum")? - 1.0),
        "maximum" => shaped(number("maximum")? + 1.0),
        "minLength" => Value::from("a".repeat(c["minLength"].as_u64()?.checked_sub(1)? as usize)),
        "maxLength" | "maxBytes" => Value::from("a".repeat(c[keyword].as_u64()? as usize + 1)),
        "cidrPrefix" => Value::from(format!("10.0.0.0/{}", c["cidrPrefix"][0].as_u64()? - 1)),
        "enum" => {
            let allowed = c["enum"].as_array()?;
            if allowed.iter().all(|a| a.is_number()) {
                let multiple = c["orMultipleOf"].as_i64();
                let n = (2..).find(|n: &i64| {
                    !allowed.iter().any(|a| a.as_i64() == Some(*n))
                        && multiple.is_none_or(|m| n % m != 0)
                })?;
                shaped(n as f64)
            } else {
                Value::from(format!("{}-not-allowed", allowed[0].as_str()?))
            }
        }
        "pattern" => {
            // A value within the length limits, so it is the pattern that refuses it.
            let re = orch::check::schema_regex(c["pattern"].as_str()?)?;
            let (lo, hi) = (c["minLength"].as_u64().unwrap_or(0), c["maxLength"].as_u64());
            let candidates =
                ["", " ", "!", "-", "~~", "a b", "Ab", "0", "é", "x/y", ":", "\u{1}", "😀"];
            let fits = |s: &&str| {
                let n = s.chars().count() as u64;
                n >= lo && hi.is_none_or(|h| n <= h)
            };
            Value::from(candidates.into_iter().filter(fits).find(|s| !re.is_match(s))?)
        }
        _ => return None,
    })
}

/// Every constraint of the generated and the API-reference data for `token`: (path, constraint,
/// rule expected, `when`).
fn constraints(token: &str) -> Vec<(String, serde_json::Value, String, serde_json::Value)> {
    let read = |p: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(repo().join(p)).unwrap()).unwrap()
    };
    let limits = read("schema/aws-limits.json");
    let api = read("src/check/api-limits.json");
    let mut out = vec![];
    for part in ["registry", "cfnLint"] {
        for (path, c) in limits["resources"][token][part].as_object().into_iter().flatten() {
            out.push((path.clone(), c.clone(), "invalid-value".into(), serde_json::json!({})));
        }
    }
    for e in api["constraints"].as_array().unwrap().iter().filter(|e| e["type"] == token) {
        let rule = e["rule"].as_str().unwrap().to_string();
        out.push((e["path"].as_str().unwrap().into(), e.clone(), rule, e["when"].clone()));
    }
    out
}

#[test]
fn every_constrained_property_the_templates_set_is_refused_when_broken() {
    let (text, stack) = program("prod");
    let doc: Value = serde_yaml::from_str(&text).unwrap();
    let mut proved = BTreeSet::new();
    let mut holes = vec![];
    let keywords = [
        "enum",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "cidrPrefix",
        "maxBytes",
    ];
    for (name, body) in doc["resources"].as_mapping().unwrap() {
        let (name, token) = (name.as_str().unwrap(), body["type"].as_str().unwrap());
        let props = &body["properties"];
        for (path, c, rule, when) in constraints(token) {
            let applies = when.as_object().into_iter().flatten().all(|(k, vs)| {
                props.get(k.as_str()).and_then(scalar).is_some_and(|v| {
                    vs.as_array().unwrap().iter().any(|x| x.as_str() == Some(v.as_str()))
                })
            });
            let mut found = vec![];
            locate(props, &path, vec![], &mut found);
            let set: Vec<_> =
                found.into_iter().filter(|s| scalar(value_at(props, s)).is_some()).collect();
            let Some(steps) = set.first().filter(|_| applies) else { continue };
            for keyword in keywords.iter().filter(|k| c.get(**k).is_some()) {
                let case = format!("{token} {path} {keyword} ({rule})");
                if !proved.insert(case.clone()) {
                    continue;
                }
                let mut broken = doc.clone();
                let base = ["resources", name, "properties"].map(|k| Step::Key(k.into()));
                let full: Vec<Step> = base.into_iter().chain(steps.iter().cloned()).collect();
                let target = node(&mut broken, &full);
                let Some(bad) = breaking(keyword, &c, target) else {
                    if !(*keyword == "minLength" && c["minLength"] == 0) {
                        holes.push(format!("{case}: no breaking value"));
                    }
                    continue;
                };
                *target = bad.clone();
                let report =
                    orch::check::check_program(&serde_yaml::to_string(&broken).unwrap(), &stack);
                let at = shown(&full);
                let marker = match *keyword {
                    "enum" => "is not one of",
                    "minimum" | "maximum" => "is outside",
                    "minLength" | "maxLength" => "characters, outside",
                    "pattern" => "does not match",
                    "cidrPrefix" => "CIDR block",
                    _ => "bytes, more than",
                };
                let refused = |f: &orch::check::Finding| {
                    f.rule == rule
                        && f.path == at
                        && f.message.contains(marker)
                        && !f.source.is_empty()
                };
                if !report.findings.iter().any(refused) {
                    holes.push(format!("{case}: {bad:?} at {at} passed: {:?}", report.findings));
                }
            }
        }
    }
    assert!(holes.is_empty(), "{} violations not refused:\n{}", holes.len(), holes.join("\n"));
    for must in [
        "aws-native:rds:DbInstance backupRetentionPeriod maximum (rds-backup-retention)",
        "aws-native:rds:DbInstance allocatedStorage minimum (rds-storage-size)",
        "aws-native:elasticloadbalancingv2:TargetGroup matcher.httpCode pattern (alb-matcher)",
        "aws-native:cloudwatch:Alarm period enum (alarm-period)",
        "aws-native:logs:LogGroup retentionInDays enum (invalid-value)",
        "aws-native:ec2:Vpc cidrBlock cidrPrefix (cidr-size)",
        "aws-native:elasticloadbalancingv2:LoadBalancer loadBalancerAttributes[key=idle_timeout.timeout_seconds].value maximum (elbv2-attribute)",
    ] {
        assert!(proved.contains(must), "{must} not exercised: {proved:#?}");
    }
    assert!(proved.len() > 60, "only {} constraints exercised", proved.len());
}

#[test]
fn every_required_property_the_templates_set_is_missed_when_removed() {
    let (text, stack) = program("prod");
    let doc: Value = serde_yaml::from_str(&text).unwrap();
    let limits: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("schema/aws-limits.json")).unwrap(),
    )
    .unwrap();
    let mut cases = 0;
    for (name, body) in doc["resources"].as_mapping().unwrap() {
        let (name, token) = (name.as_str().unwrap(), body["type"].as_str().unwrap());
        let objects = limits["resources"][token]["objects"].as_object();
        for (path, o) in objects.into_iter().flatten() {
            let mut found = vec![];
            if path.is_empty() {
                found.push(vec![]);
            } else {
                locate(&body["properties"], path, vec![], &mut found);
            }
            let Some(steps) = found.first() else { continue };
            for key in o["required"].as_array().into_iter().flatten().filter_map(|k| k.as_str()) {
                let mut broken = doc.clone();
                let base = ["resources", name, "properties"].map(|k| Step::Key(k.into()));
                let full: Vec<Step> = base.into_iter().chain(steps.iter().cloned()).collect();
                let Some(map) = node(&mut broken, &full).as_mapping_mut() else { continue };
                if map.remove(key).is_none() {
                    continue;
                }
                cases += 1;
                let report =
                    orch::check::check_program(&serde_yaml::to_string(&broken).unwrap(), &stack);
                let at = format!("{}.{key}", shown(&full));
                assert!(
                    report.findings.iter().any(|f| f.rule == "missing-required" && f.path == at),
                    "removing {at} passed: {:?}",
                    report.findings
                );
            }
        }
    }
    assert!(cases >= 10, "only {cases} required properties exercised");
}
