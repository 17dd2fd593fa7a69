//! The cost module against the real templates, stacks and price table of the repository.
use super::*;
use crate::config::Stack;

fn project() -> Project {
    Project::discover(Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))).unwrap()
}

fn stack(env: &str, edit: impl Fn(&str) -> String) -> Stack {
    let path = project().stack_file(env);
    let text = edit(&std::fs::read_to_string(&path).unwrap());
    crate::config::load_str(&text, env, &path).unwrap()
}

fn program(stack: &Stack) -> String {
    crate::render::render(&project(), stack).unwrap().program
}

/// Every resource type a template can emit (its `    type: <token>` lines, conditional ones too).
fn template_types() -> Vec<String> {
    let mut types = vec![];
    let mut dirs = vec![project().templates_dir()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                if let Some(token) = line.strip_prefix("    type: ") {
                    if token.matches(':').count() == 2 && !types.contains(&token.to_string()) {
                        types.push(token.to_string());
                    }
                }
            }
        }
    }
    types
}

#[test]
fn every_type_the_templates_can_emit_is_priced_or_listed_free_with_a_reason() {
    let types = template_types();
    assert!(types.len() >= 20, "{types:?}");
    for ty in &types {
        let free = resources::FREE.iter().find(|(t, _)| t == ty);
        assert!(
            resources::PRICED.contains(&ty.as_str()) || free.is_some_and(|(_, r)| !r.is_empty()),
            "`{ty}` is emitted by a template but neither priced nor free"
        );
    }
}

/// An edit of a stack file's text.
type Edit = fn(&str) -> String;

#[test]
fn every_resource_of_every_rendered_program_is_priced_or_free() {
    let variants: [(&str, Edit); 4] = [
        ("dev", |s| s.to_string()),
        ("prod", |s| s.to_string()),
        ("dev", |s| s.replace("profile: economy", "profile: standard")),
        ("prod", |s| {
            s.replace("domain:\n  name: www.orch-demo.net\n  parent_zone: orch-demo.net\n", "")
        }),
    ];
    for (env, edit) in variants {
        let stack = stack(env, edit);
        let text = program(&stack);
        let e = estimate(&project(), &stack, &text).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let resources = doc["resources"].as_mapping().unwrap();
        for name in resources.keys().map(|k| k.as_str().unwrap()) {
            let priced = e.lines.iter().any(|l| l.resource == name);
            let free = e.free.iter().any(|f| f.resource == name);
            assert!(priced ^ free, "{env}: `{name}` priced={priced} free={free}");
        }
        let sum: f64 = e.lines.iter().map(|l| l.monthly_usd).sum();
        assert!((sum - e.total_usd).abs() < 1e-6);
    }
}

#[test]
fn a_program_with_a_type_orch_cannot_price_is_an_error_naming_it() {
    let stack = stack("dev", |s| s.to_string());
    let text = program(&stack).replacen(
        "resources:\n",
        "resources:\n  queue:\n    type: aws-native:sqs:Queue\n    properties: {}\n",
        1,
    );
    let e = estimate(&project(), &stack, &text).unwrap_err();
    assert!(
        matches!(&e, CostError::UnknownType { resource, resource_type } if resource == "queue" && resource_type == "aws-native:sqs:Queue"),
        "{e}"
    );
}

#[test]
fn an_instance_type_missing_from_the_table_is_an_error_naming_the_price() {
    let stack = stack("dev", |s| s.replace("type: t3.micro", "type: c7i.48xlarge"));
    let e = estimate(&project(), &stack, &program(&stack)).unwrap_err();
    assert!(
        e.to_string().contains("ec2.instance.c7i.48xlarge") && e.to_string().contains("asg"),
        "{e}"
    );
}

#[test]
fn raising_instances_min_changes_the_plan_by_the_instance_price_times_730_hours() {
    let live = program(&stack("dev", |s| s.to_string()));
    let table = PriceTable::load(&project().price_table("eu-west-1"), "eu-west-1").unwrap();
    let hourly = table.prices["ec2.instance.t3.micro"].usd;
    for (min, max) in [(3u32, 4u32), (4, 4)] {
        let raised = stack("dev", |s| {
            s.replace("  min: 2\n  desired: 2\n", &format!("  min: {min}\n  desired: {min}\n"))
                .replace("  max: 4\n", &format!("  max: {max}\n"))
        });
        let d = for_plan(&project(), &raised, Some(&live)).unwrap();
        let instances =
            d.changes.iter().find(|c| c.resource == "asg" && c.kind == "instances").unwrap();
        let expected = hourly * 730.0 * f64::from(min - 2);
        assert!((instances.delta_usd - expected).abs() < 1e-9, "{instances:?} vs {expected}");
        // The whole change is the group's per-instance items and nothing else.
        let other: Vec<_> = d.changes.iter().filter(|c| c.resource != "asg").collect();
        assert!(other.is_empty(), "{other:?}");
        let per_instance: f64 = d.changes.iter().map(|c| c.delta_usd).sum();
        assert!((d.delta_usd.unwrap() - per_instance).abs() < 1e-6);
        assert!(
            d.lines()[1].contains(&format!("+{}/month: asg {min} × t3.micro", usd(expected))),
            "{:?}",
            d.lines()
        );
    }
}

#[test]
fn without_a_live_program_the_plan_shows_the_total_alone() {
    let d = for_plan(&project(), &stack("dev", |s| s.to_string()), None).unwrap();
    assert!(d.live_usd.is_none() && d.changes.is_empty());
    assert!(d.lines()[0].contains("no program recorded"), "{:?}", d.lines());
}

#[test]
fn the_budget_names_the_total_and_the_biggest_items_only_when_exceeded() {
    let over = stack("prod", |s| format!("{s}cost:\n  budget_monthly_usd: 100\n"));
    let message = over_budget(&project(), &over, &program(&over)).unwrap().unwrap();
    let e = estimate(&project(), &over, &program(&over)).unwrap();
    assert!(message.contains(&usd(e.total_usd)) && message.contains("$100.00"), "{message}");
    assert!(message.contains("db "), "the database is prod's biggest item: {message}");
    let within = stack("prod", |s| format!("{s}cost:\n  budget_monthly_usd: 100000\n"));
    assert_eq!(over_budget(&project(), &within, &program(&within)).unwrap(), None);
}

#[test]
fn the_economy_profile_has_one_nat_gateway_and_standard_one_per_zone() {
    let count = |s: &Stack| program(s).matches("type: aws-native:ec2:NatGateway").count();
    assert_eq!(count(&stack("dev", |s| s.to_string())), 1);
    assert_eq!(count(&stack("dev", |s| s.replace("profile: economy", "profile: standard"))), 2);
    assert_eq!(count(&stack("prod", |s| s.to_string())), 2);
    assert_eq!(count(&stack("prod", |s| s.replace("profile: standard", "profile: economy"))), 1);
    // Without the key, a protected stack is standard and any other economy.
    assert_eq!(count(&stack("dev", |s| s.replace("profile: economy\n", ""))), 1);
    assert_eq!(count(&stack("prod", |s| s.replace("profile: standard\n", ""))), 2);
}
