//! Single-property limits the AWS API references state and the registry schemas omit (RDS backup
//! retention and storage sizes per engine and storage type, ELBv2 attribute ranges, the ALB matcher
//! syntax, CloudWatch alarm periods, VPC/subnet sizes, user-data size, IP protocols): the data is
//! `api-limits.json` beside this file, each entry with its rule name and the page it comes from.
use serde::Deserialize;
use serde_yaml::Mapping;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::values::{at, literal, resources, violation, Constraint};
use super::Finding;

const API_JSON: &str = include_str!("api-limits.json");

#[derive(Debug, Deserialize)]
struct Data {
    constraints: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    rule: String,
    #[serde(rename = "type")]
    token: String,
    path: String,
    #[serde(default)]
    when: BTreeMap<String, Vec<String>>,
    source: String,
    #[serde(flatten)]
    constraint: Constraint,
}

fn data() -> &'static [Entry] {
    static DATA: OnceLock<Vec<Entry>> = OnceLock::new();
    // Embedded and covered by tests; a broken file checks nothing rather than panicking.
    DATA.get_or_init(|| {
        serde_json::from_str::<Data>(API_JSON).map(|d| d.constraints).unwrap_or_default()
    })
}

/// Every rule name with its sources (one line per entry).
pub fn rules() -> Vec<(&'static str, &'static str)> {
    data().iter().map(|e| (e.rule.as_str(), e.source.as_str())).collect()
}

/// Check every literal value against the API references' limits for its resource type.
pub(super) fn run(doc: &Mapping) -> Vec<Finding> {
    let mut out = vec![];
    for (name, token, props) in resources(doc) {
        for e in data().iter().filter(|e| e.token == token) {
            let applies = e.when.iter().all(|(k, values)| {
                props.get(k.as_str()).and_then(literal).is_some_and(|v| values.contains(&v))
            });
            if !applies {
                continue;
            }
            let mut found = vec![];
            at(props, &e.path, format!("resources.{name}.properties"), &mut found);
            for (shown, value) in found {
                if let Some(why) = violation(&e.constraint, value) {
                    out.push(Finding::error(&e.rule, &shown, why).with_source(&e.source));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(props: &str) -> Vec<Finding> {
        let doc: Mapping = serde_yaml::from_str(&format!(
            "resources:\n  db:\n    type: aws-native:rds:DbInstance\n    properties: {props}\n"
        ))
        .unwrap();
        run(&doc)
    }

    #[test]
    fn storage_minimum_depends_on_engine_and_storage_type() {
        let rules = |p: &str| db(p).into_iter().map(|f| f.rule).collect::<Vec<_>>();
        assert!(rules("{engine: postgres, storageType: gp3, allocatedStorage: \"20\"}").is_empty());
        assert_eq!(
            rules("{engine: postgres, storageType: gp3, allocatedStorage: \"10\"}"),
            ["rds-storage-size"]
        );
        assert_eq!(
            rules("{engine: postgres, storageType: io1, allocatedStorage: \"50\"}"),
            ["rds-storage-size"]
        );
        assert!(
            rules("{engine: postgres, storageType: standard, allocatedStorage: \"5\"}").is_empty()
        );
    }

    #[test]
    fn every_entry_parses_and_names_its_source() {
        assert!(data().len() >= 15);
        assert!(data().iter().all(|e| e.source.starts_with("https://docs.aws.amazon.com/")));
        let f = db("{backupRetentionPeriod: 40}");
        assert_eq!(f[0].path, "resources.db.properties.backupRetentionPeriod");
        assert!(f[0].source.contains("API_CreateDBInstance"), "{f:?}");
    }
}
