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
            edit(&mut doc, path, Some(e.value.clone().expect("`set` needs a `value`")));
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
