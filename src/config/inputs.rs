//! Strict charsets for every stack value that reaches the rendered YAML program or the instances'
//! shell (user data): each is checked here, with its key, before anything is rendered, so a value
//! such as `aws_native_version: '1.79.0", pluginDownloadURL: "https://…'` is refused by `orch check`
//! (exit 2) instead of rewriting the program. The templates then emit the values through the one
//! escaping helper (`render::engine`'s `yaml`). Names follow the rules of the AWS names they become.
use regex::Regex;
use std::sync::LazyLock;

use super::validate::Problems;
use super::{Stack, Target};

/// An environment name: it becomes `orch-<env>-…` names, the log group `/orch/<env>/app`, the
/// Pulumi project and stack and the final RDS snapshot id `orch-<env>-final-<stamp>`. RDS
/// identifiers start with a letter and hold letters, digits and single hyphens, never a trailing
/// one (RDS API reference, DBSnapshotIdentifier); 16 characters keep `orch-<env>-target-5xx` and the
/// other derived names within every limit.
pub fn is_env_name(name: &str) -> bool {
    static RE: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"));
    name.len() <= 16 && RE.is_match(name)
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| unreachable!("a constant pattern: {e}"))
}

/// (key, value, pattern, what it must be) for every free-form value that is rendered.
fn rules(s: &Stack) -> Vec<(String, String, &'static str, &'static str)> {
    let mut out = vec![];
    let mut rule = |key: &str, value: &str, pattern: &'static str, what: &'static str| {
        out.push((key.to_string(), value.to_string(), pattern, what));
    };
    if let Some(p) = &s.pulumi {
        rule(
            "pulumi.aws_native_version",
            &p.aws_native_version,
            r"^[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}$",
            "a provider version like 1.79.0",
        );
    }
    rule(
        "health_check.path",
        &s.health_check.path,
        r"^/[A-Za-z0-9._~/%-]{0,1023}$",
        "an absolute path of letters, digits and . _ ~ / % -",
    );
    if s.target == Target::Aws {
        rule(
            "instances.type",
            &s.instances.instance_type,
            r"^[a-z0-9][a-z0-9-]*\.[a-z0-9]+$",
            "an EC2 instance type like t3.micro",
        );
        rule(
            "instances.ami_parameter",
            &s.instances.ami_parameter,
            r"^/[A-Za-z0-9_./-]{1,2047}$",
            "an SSM parameter name like /aws/service/…",
        );
        if let Some(class) = &s.database.instance_class {
            rule(
                "database.instance_class",
                class,
                r"^db\.[a-z0-9][a-z0-9-]*\.[a-z0-9]+$",
                "an RDS instance class like db.t3.micro",
            );
        }
    }
    for (k, v) in &s.tags {
        // The characters AWS allows in tag keys and values (the Tag data type of the tagging APIs).
        let tag = r"^[\p{L}\p{Z}\p{N}_.:/=+@-]*$";
        rule(
            &format!("tags.{k}"),
            k,
            tag,
            "a tag key of letters, digits, spaces and _ . : / = + - @",
        );
        rule(
            &format!("tags.{k}"),
            v,
            tag,
            "a tag value of letters, digits, spaces and _ . : / = + - @",
        );
    }
    out
}

/// Every value of `s` outside its charset, with its key.
pub(super) fn check(s: &Stack, out: &mut Problems) {
    out.check(
        is_env_name(&s.name),
        "name",
        format!(
            "environment name `{}` must be 1–16 lowercase letters, digits and single '-', starting with a letter and not ending with '-' (it becomes AWS names such as RDS snapshot ids)",
            s.name.escape_debug()
        ),
    );
    for (key, value, pattern, what) in rules(s) {
        out.check(
            re(pattern).is_match(&value),
            &key,
            format!("`{}` is not {what}", value.escape_debug()),
        );
    }
    if let Some(registry) = &s.image.registry {
        if let Err(why) = crate::image::uri::registry(registry) {
            out.add("image.registry", why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_fit_every_aws_name_they_become() {
        for ok in ["dev", "prod", "t123", "eu-prod-2", "a"] {
            assert!(is_env_name(ok), "{ok}");
        }
        for bad in ["", "dev-", "a--b", "-dev", "1dev", "Dev", "dev_1", "seventeen-chars-x", "a b"]
        {
            assert!(!is_env_name(bad), "{bad}");
        }
    }
}
