//! Pulumi's engine events (`--event-log`: one JSON `apitype.EngineEvent` per line, see
//! `sdk/go/common/apitype/events.go`), parsed into what orch shows and decides on: one line per
//! resource, diagnostics, failed or partial operations, cancellation and the summary; plus the
//! step vocabulary (URN parts, changed properties) that `--json` previews share with the events.
use serde::Deserialize;
use std::collections::BTreeMap;

/// The subset of `apitype.EngineEvent` orch reads; unknown event kinds are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EngineEvent {
    pub sequence: i64,
    pub timestamp: i64,
    pub cancel_event: Option<serde_json::Value>,
    pub diagnostic_event: Option<DiagnosticEvent>,
    pub prelude_event: Option<serde_json::Value>,
    pub summary_event: Option<SummaryEvent>,
    pub resource_pre_event: Option<StepEvent>,
    pub res_outputs_event: Option<StepEvent>,
    pub res_op_failed_event: Option<ResOpFailedEvent>,
    pub error_event: Option<ErrorEvent>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DiagnosticEvent {
    pub urn: String,
    pub message: String,
    pub severity: String,
    pub ephemeral: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SummaryEvent {
    pub maybe_corrupt: bool,
    pub duration_seconds: i64,
    pub resource_changes: BTreeMap<String, i64>,
    pub is_preview: bool,
    pub result: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StepEvent {
    pub metadata: StepMetadata,
    pub planning: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StepMetadata {
    pub op: String,
    pub urn: String,
    #[serde(rename = "type")]
    pub type_: String,
    /// Top-level properties that differ (`null` or absent when none); `diffReasons` in a preview digest.
    #[serde(alias = "diffReasons")]
    pub diffs: Option<Vec<String>>,
    /// Property path → kind of change, when the provider reports a detailed diff.
    pub detailed_diff: Option<BTreeMap<String, serde_json::Value>>,
}

impl StepMetadata {
    /// The changed properties, sorted: the detailed diff's paths when there are any (they name the
    /// element, e.g. `securityGroupIngress[1]`), else the plain list of top-level keys.
    pub fn properties(&self) -> Vec<String> {
        let mut props: Vec<String> =
            self.detailed_diff.as_ref().map(|d| d.keys().cloned().collect()).unwrap_or_default();
        if props.is_empty() {
            props = self.diffs.clone().unwrap_or_default();
        }
        props.sort();
        props
    }
}

/// Ops that leave a resource as it is (a refresh that reads the same, a read, a discard).
pub fn is_unchanged(op: &str) -> bool {
    matches!(op, "same" | "refresh" | "read" | "read-discard" | "discard")
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResOpFailedEvent {
    pub metadata: StepMetadata,
    /// `resource.Status`: 0 ok, 1 partial failure, 2 unknown.
    pub status: i64,
    pub steps: i64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ErrorEvent {
    pub error: String,
}

/// The resource's name: the last `::` part of its URN.
pub fn short_name(urn: &str) -> &str {
    urn.rsplit("::").next().unwrap_or(urn)
}

/// The resource's type from its URN (`urn:pulumi:stack::project::[parent$]type::name`), without
/// the parent types; empty when the URN has no type part.
pub fn urn_type(urn: &str) -> &str {
    let t = urn.split("::").nth(2).unwrap_or("");
    t.rsplit('$').next().unwrap_or(t)
}

/// Whether the URN is the stack's own root resource (`pulumi:pulumi:Stack`).
pub fn is_stack(urn: &str) -> bool {
    urn_type(urn) == "pulumi:pulumi:Stack"
}

/// What the stream said, gathered for the summary and for errors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// op → count, from the summary event (or counted from outputs when it is missing).
    pub changes: BTreeMap<String, i64>,
    pub counted: BTreeMap<String, i64>,
    /// Error diagnostics, in order, each prefixed with the resource's name when it has one.
    pub errors: Vec<String>,
    pub failed: Vec<String>,
    pub partial: Vec<String>,
    pub cancelled: bool,
    pub result: Option<String>,
    pub maybe_corrupt: bool,
    pub seen_summary: bool,
}

/// One line worth showing to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Show {
    Started { urn: String, op: String, type_: String },
    Done { urn: String, op: String },
    Failed { urn: String, partial: bool },
    Warning(String),
}

impl Tally {
    /// Take in one event; returns what to show for it, if anything.
    pub fn absorb(&mut self, e: &EngineEvent) -> Option<Show> {
        if e.cancel_event.is_some() {
            self.cancelled = true;
        }
        if let Some(err) = &e.error_event {
            self.errors.push(err.error.trim().to_string());
        }
        if let Some(d) = &e.diagnostic_event {
            let text = d.message.trim().to_string();
            let located = if d.urn.is_empty() {
                text.clone()
            } else {
                format!("{}: {text}", short_name(&d.urn))
            };
            match d.severity.as_str() {
                "error" => self.errors.push(located),
                "warning" if !d.ephemeral => return Some(Show::Warning(located)),
                _ => {}
            }
        }
        if let Some(s) = &e.summary_event {
            self.seen_summary = true;
            self.changes = s.resource_changes.clone();
            self.maybe_corrupt = s.maybe_corrupt;
            if !s.result.is_empty() {
                self.result = Some(s.result.clone());
                if s.result == "canceled" {
                    self.cancelled = true;
                }
            }
        }
        if let Some(f) = &e.res_op_failed_event {
            let name = short_name(&f.metadata.urn).to_string();
            let partial = f.status == 1;
            if partial {
                self.partial.push(name);
            } else {
                self.failed.push(name);
            }
            return Some(Show::Failed { urn: f.metadata.urn.clone(), partial });
        }
        if let Some(p) =
            e.resource_pre_event.as_ref().filter(|p| !p.planning && p.metadata.op != "same")
        {
            return Some(Show::Started {
                urn: p.metadata.urn.clone(),
                op: p.metadata.op.clone(),
                type_: p.metadata.type_.clone(),
            });
        }
        if let Some(o) = e.res_outputs_event.as_ref().filter(|o| !o.planning) {
            *self.counted.entry(o.metadata.op.clone()).or_default() += 1;
            if o.metadata.op != "same" {
                return Some(Show::Done { urn: o.metadata.urn.clone(), op: o.metadata.op.clone() });
            }
        }
        None
    }

    /// "2 created, 1 updated, 5 unchanged" from the summary (or the counted outputs).
    pub fn summary_line(&self) -> String {
        let source = if self.seen_summary { &self.changes } else { &self.counted };
        let word = |op: &str| {
            match op {
                "create" => "created",
                "update" => "updated",
                "delete" => "deleted",
                "replace" => "replaced",
                "same" => "unchanged",
                other => other,
            }
            .to_string()
        };
        let parts: Vec<String> = source
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(op, n)| format!("{n} {}", word(op)))
            .collect();
        if parts.is_empty() {
            "no resources changed".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Parse one line of the event log; blank or foreign lines give `None`.
pub fn parse_line(line: &str) -> Option<EngineEvent> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    serde_json::from_str(line).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(lines: &[&str]) -> (Tally, Vec<Show>) {
        let mut t = Tally::default();
        let shown =
            lines.iter().filter_map(|l| parse_line(l)).filter_map(|e| t.absorb(&e)).collect();
        (t, shown)
    }

    #[test]
    fn success_stream_gives_lines_and_summary() {
        let (t, shown) = tally(&[
            r#"{"sequence":0,"timestamp":1,"preludeEvent":{"config":{}}}"#,
            r#"{"sequence":1,"timestamp":1,"resourcePreEvent":{"metadata":{"op":"create","urn":"urn:pulumi:dev::orch::aws-native:ec2:Vpc::vpc","type":"aws-native:ec2:Vpc"}}}"#,
            r#"{"sequence":2,"timestamp":2,"resOutputsEvent":{"metadata":{"op":"create","urn":"urn:pulumi:dev::orch::aws-native:ec2:Vpc::vpc","type":"aws-native:ec2:Vpc"}}}"#,
            r#"{"sequence":3,"timestamp":2,"resOutputsEvent":{"metadata":{"op":"same","urn":"urn:pulumi:dev::orch::pulumi:pulumi:Stack::orch-dev","type":"pulumi:pulumi:Stack"}}}"#,
            r#"{"sequence":4,"timestamp":3,"summaryEvent":{"maybeCorrupt":false,"durationSeconds":2,"resourceChanges":{"create":1,"same":1},"PolicyPacks":{},"result":"succeeded"}}"#,
            "not json",
        ]);
        assert_eq!(shown.len(), 2);
        assert_eq!(
            shown[1],
            Show::Done {
                urn: "urn:pulumi:dev::orch::aws-native:ec2:Vpc::vpc".into(),
                op: "create".into()
            }
        );
        assert_eq!(t.summary_line(), "1 created, 1 unchanged");
        assert!(t.errors.is_empty() && !t.cancelled && t.result.as_deref() == Some("succeeded"));
    }

    #[test]
    fn failures_partials_diagnostics_and_cancellation_are_kept() {
        let (t, _) = tally(&[
            r#"{"diagnosticEvent":{"urn":"urn:pulumi:dev::orch::aws-native:rds:DbInstance::db","message":"quota exceeded\n","severity":"error","color":"never"}}"#,
            r#"{"resOpFailedEvent":{"metadata":{"op":"create","urn":"urn:pulumi:dev::orch::aws-native:rds:DbInstance::db"},"status":0,"steps":1}}"#,
            r#"{"resOpFailedEvent":{"metadata":{"op":"update","urn":"urn:pulumi:dev::orch::aws-native:autoscaling:AutoScalingGroup::asg"},"status":1,"steps":1}}"#,
            r#"{"cancelEvent":{}}"#,
        ]);
        assert_eq!(t.errors, ["db: quota exceeded"]);
        assert_eq!(
            (t.failed.as_slice(), t.partial.as_slice()),
            (&["db".to_string()][..], &["asg".to_string()][..])
        );
        assert!(t.cancelled);
    }

    #[test]
    fn step_metadata_names_type_and_changed_properties() {
        let e = parse_line(r#"{"resOutputsEvent":{"metadata":{"op":"update","urn":"urn:pulumi:dev::orch::aws:x$aws-native:ec2:SecurityGroup::albSg","diffs":["tags","ingress"],"detailedDiff":null}}}"#).unwrap();
        let m = &e.res_outputs_event.unwrap().metadata;
        assert_eq!(
            (urn_type(&m.urn), short_name(&m.urn)),
            ("aws-native:ec2:SecurityGroup", "albSg")
        );
        assert_eq!(m.properties(), ["ingress", "tags"]);
        let detailed = StepMetadata {
            detailed_diff: Some(BTreeMap::from([(
                "ingress[1]".to_string(),
                serde_json::json!({"kind": "add"}),
            )])),
            ..m.clone()
        };
        assert_eq!(detailed.properties(), ["ingress[1]"]);
        assert!(
            is_stack("urn:pulumi:dev::orch::pulumi:pulumi:Stack::orch-dev") && !is_stack(&m.urn)
        );
        assert!(is_unchanged("refresh") && !is_unchanged("delete"));
    }
}
