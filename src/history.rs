//! The release history both targets show (`orch releases`): one row per release, newest first, the
//! live one marked; and how `orch rollback --to` picks a row (by release id, or by image digest or
//! a prefix of its hex).
use serde::Serialize;

/// One release.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Local: the release id; AWS: the history record's name (`<time>-<digest prefix>`).
    pub id: String,
    pub time: crate::clock::Time,
    pub revision: String,
    pub digest: String,
    /// The AMI (AWS only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ami: Option<String>,
    /// `deployed`, `rolled_back`, `destroyed`.
    pub outcome: String,
    pub by: String,
    /// What runs now.
    pub live: bool,
    /// What the release runs, for telling two releases apart (local: the release id, which covers
    /// image and environment; AWS: image digest and AMI).
    #[serde(skip)]
    pub runs: String,
}

/// The table `orch releases` prints.
pub fn table(rows: &[Row]) -> Vec<String> {
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
            r.outcome,
            r.by,
            r.ami.as_deref().map(|a| format!("  {a}")).unwrap_or_default()
        ));
    }
    out
}

/// Does `wanted` name this row (its id, its digest, or a prefix of at least 7 digest hex digits)?
pub fn matches(row: &Row, wanted: &str) -> bool {
    let hex = row.digest.trim_start_matches("sha256:");
    let want = wanted.trim_start_matches("sha256:");
    row.id == wanted || row.digest == wanted || (want.len() >= 7 && hex.starts_with(want))
}

/// The release `rollback` goes to: the one `to` names, else the newest deployed release whose
/// image or release differs from the live one. Rows are newest first.
pub fn target<'a>(rows: &'a [Row], to: Option<&str>) -> Result<&'a Row, String> {
    let deployed = |r: &&Row| r.outcome == "deployed";
    match to {
        Some(want) => rows.iter().filter(deployed).find(|r| matches(r, want)).ok_or_else(|| {
            format!("no deployed release matches `{want}` (give a release id or an image digest)")
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
        assert_eq!(table(&rows).len(), 5);
        assert!(table(&rows)[2].starts_with('*'));
    }
}
