//! The release history both targets show (`orch releases`): one row per release, newest first, the
//! live one marked; and how `orch rollback --to` picks a row (by release id, or by image digest or
//! a prefix of its hex).
use serde::Serialize;

/// One release.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Row {
    /// Local: the release id; AWS: the history record's name (`<time>-<digest prefix>`).
    pub id: String,
    pub time: crate::clock::Time,
    pub revision: String,
    pub digest: String,
    /// The AMI (AWS only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ami: Option<String>,
    /// Local: `deployed`, `rolled_back`; AWS: the release state (`verified`, `unverified`, `failed`,
    /// `rolled_back`, `interrupted`, `applying`) or `destroyed`.
    pub outcome: String,
    pub by: String,
    /// What runs now.
    pub live: bool,
    /// AWS: whether the release's image is still in its ECR repository (None: not looked up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_present: Option<bool>,
    /// A canary's judged steps (samples, ratios, p99s, verdicts), when it rolled out as one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub canary: Vec<crate::rollout::canary::StepAnalysis>,
    /// Why it was deployed with `--force`, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forced: Option<String>,
    /// What the release runs, for telling two releases apart (local: the release id, which covers
    /// image and environment; AWS: image digest and AMI).
    #[serde(skip)]
    pub runs: String,
}

/// The table `orch releases` prints.
pub(crate) fn table(rows: &[Row]) -> Vec<String> {
    let mut out = vec![format!(
        "  {:<20} {:<20} {:<19} {:<12} {:<12} {}",
        "time", "release", "image", "revision", "outcome", "by"
    )];
    for r in rows {
        out.push(format!(
            "{} {:<20} {:<20} {:<19} {:<12} {:<12} {}{}",
            if r.live { "*" } else { " " },
            crate::clock::show(&r.time),
            r.id,
            r.digest.chars().take(19).collect::<String>(),
            r.revision.chars().take(12).collect::<String>(),
            if r.image_present == Some(false) {
                format!("{} (image gone)", r.outcome)
            } else {
                r.outcome.clone()
            },
            r.by,
            r.ami.as_deref().map(|a| format!("  {a}")).unwrap_or_default()
        ));
    }
    out
}

/// Does `wanted` name this row (its id, its digest, or a prefix of at least 7 digest hex digits)?
pub(crate) fn matches(row: &Row, wanted: &str) -> bool {
    let hex = row.digest.trim_start_matches("sha256:");
    let want = wanted.trim_start_matches("sha256:");
    row.id == wanted || row.digest == wanted || (want.len() >= 7 && hex.starts_with(want))
}

/// The release `rollback` goes to: the one `to` names, else the newest good release (deployed
/// locally, verified on AWS) whose image or release differs from the live one. Rows are newest
/// first.
pub(crate) fn target<'a>(rows: &'a [Row], to: Option<&str>) -> Result<&'a Row, String> {
    let deployed = |r: &&Row| r.outcome == "deployed" || r.outcome == "verified";
    match to {
        Some(want) => rows.iter().filter(deployed).find(|r| matches(r, want)).ok_or_else(|| {
            format!("no deployed release matches `{want}` (a verified one; give a release id or an image digest)")
        }),
        None => {
            let live = rows.iter().find(|r| r.live);
            rows.iter()
                .filter(deployed)
                .find(|r| !r.live && live.is_none_or(|l| l.runs != r.runs))
                .ok_or_else(|| "there is no earlier deployed release to go back to".to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, digest: &str, outcome: &str, live: bool) -> Row {
        Row {
            id: id.into(),
            time: chrono::DateTime::UNIX_EPOCH,
            revision: "r".into(),
            digest: digest.into(),
            ami: None,
            outcome: outcome.into(),
            by: "me@here".into(),
            live,
            image_present: None,
            canary: vec![],
            forced: None,
            runs: digest.into(),
        }
    }

    #[test]
    fn the_default_target_is_the_deployed_release_before_the_live_one() {
        let rows = [
            row("c", "sha256:ccc", "rolled_back", false),
            row("b", "sha256:bbb", "deployed", true),
            row("b2", "sha256:bbb", "deployed", false),
            row("a", "sha256:aaaaaaaa", "deployed", false),
        ];
        assert_eq!(target(&rows, None).unwrap().id, "a");
        assert_eq!(target(&rows, Some("sha256:aaaaaaaa")).unwrap().id, "a");
        assert_eq!(target(&rows, Some("aaaaaaa")).unwrap().id, "a");
        assert!(target(&rows, Some("c")).is_err(), "a rolled-back release is no target");
        assert!(target(&rows[..2], None).is_err());
        // AWS: the live release failed verification; the target is the last verified one.
        let aws = [
            row("bad", "sha256:bbb", "unverified", true),
            row("failed", "sha256:fff", "failed", false),
            row("good", "sha256:aaaaaaaa", "verified", false),
        ];
        assert_eq!(target(&aws, None).unwrap().id, "good");
        assert!(target(&aws, Some("failed")).is_err(), "only a verified release is a target");
        let mut gone = aws.clone();
        gone[2].image_present = Some(false);
        assert!(table(&gone)[3].contains("verified (image gone)"), "{:?}", table(&gone));
        assert_eq!(table(&rows).len(), 5);
        assert!(table(&rows)[2].starts_with('*'));
    }
}
