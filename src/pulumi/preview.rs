//! The preview digest `pulumi preview --json` / `pulumi refresh --preview-only --json` prints
//! (`display.PreviewDigest` in pulumi's `pkg/backend/display/json.go`): the steps it would take and
//! the change summary. Only what orch reads is modelled; unknown fields are ignored.
use serde::Deserialize;
use std::collections::BTreeMap;

use super::events::StepMetadata;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PreviewDigest {
    /// Each `PreviewStep` carries the same step fields as the events' metadata (`diffReasons` is
    /// read as [`StepMetadata::diffs`]).
    pub steps: Option<Vec<StepMetadata>>,
    /// op → count.
    pub change_summary: Option<BTreeMap<String, i64>>,
}

impl PreviewDigest {
    /// The digest in `stdout`, if it is one: one JSON document with `steps` or a `changeSummary`
    /// (an engine event stream is not).
    pub fn parse(stdout: &str) -> Option<PreviewDigest> {
        serde_json::from_str::<PreviewDigest>(stdout.trim())
            .ok()
            .filter(|d| d.steps.is_some() || d.change_summary.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_steps_and_summary_are_read_and_event_lines_are_not_a_digest() {
        let d = PreviewDigest::parse(r#"{"steps":[{"op":"update","urn":"u","diffReasons":["tags"],"detailedDiff":null}],"changeSummary":{"update":1},"duration":1}"#).unwrap();
        // `diffReasons` is read as the step's `diffs`.
        let steps = d.steps.unwrap();
        assert_eq!(
            (steps[0].op.as_str(), steps[0].properties()),
            ("update", vec!["tags".to_string()])
        );
        assert_eq!(d.change_summary.unwrap()["update"], 1);
        assert!(PreviewDigest::parse(
            r#"{"sequence":1,"resourcePreEvent":{"metadata":{"op":"refresh","urn":"u"}}}"#
        )
        .is_none());
        assert!(PreviewDigest::parse("not json").is_none());
    }
}
