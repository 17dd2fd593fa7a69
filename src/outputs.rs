//! The stack outputs orch reads back after `pulumi up` (and from the deployment record): one enum
//! instead of string literals, so a renamed output is a compile error here and an `orch check`
//! finding (`program-outputs`) on a program that does not define one.
use std::fmt;

/// An output of the rendered program that orch itself reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Output {
    /// The HTTPS URL of the tier.
    Url,
    /// The HTTP URL (for the redirect check).
    HttpUrl,
    AsgName,
    TargetGroupArn,
    LaunchTemplateId,
    /// The launch template's latest version (the instance refresh's desired configuration).
    LaunchTemplateVersion,
    /// The alarm the instance refresh rolls back on.
    TargetErrorsAlarm,
    /// The objective's alarms (stacks with `slo:`): target 5xx ratio, load balancer 5xx ratio, p99.
    SloTargetErrorsAlarm,
    SloElbErrorsAlarm,
    SloLatencyAlarm,
    /// The digest of the deployed image.
    ImageDigest,
    CertificateArn,
    DbInstanceIdentifier,
    /// The CloudWatch log group of the instances.
    LogGroupName,
    /// The dimension values CloudWatch publishes the load balancer's metrics under.
    LoadBalancerFullName,
    TargetGroupFullName,
}

impl Output {
    /// The alarms an instance refresh rolls back on, those the program defines.
    pub const REFRESH_ALARMS: &[Output] = &[
        Output::TargetErrorsAlarm,
        Output::SloTargetErrorsAlarm,
        Output::SloElbErrorsAlarm,
        Output::SloLatencyAlarm,
    ];

    /// Every output the program must define (the certificate ARN is a config value, not an output).
    pub const REQUIRED: &[Output] = &[
        Output::Url,
        Output::HttpUrl,
        Output::AsgName,
        Output::TargetGroupArn,
        Output::LaunchTemplateId,
        Output::LaunchTemplateVersion,
        Output::TargetErrorsAlarm,
        Output::ImageDigest,
        Output::DbInstanceIdentifier,
        Output::LogGroupName,
    ];

    /// The output's name in the program.
    pub fn key(self) -> &'static str {
        match self {
            Output::Url => "url",
            Output::HttpUrl => "httpUrl",
            Output::AsgName => "asgName",
            Output::TargetGroupArn => "targetGroupArn",
            Output::LaunchTemplateId => "launchTemplateId",
            Output::LaunchTemplateVersion => "launchTemplateVersion",
            Output::TargetErrorsAlarm => "targetErrorsAlarm",
            Output::SloTargetErrorsAlarm => "sloTargetErrorsAlarm",
            Output::SloElbErrorsAlarm => "sloElbErrorsAlarm",
            Output::SloLatencyAlarm => "sloLatencyAlarm",
            Output::ImageDigest => "imageDigest",
            Output::CertificateArn => "certificateArn",
            Output::DbInstanceIdentifier => "dbInstanceIdentifier",
            Output::LogGroupName => "logGroupName",
            Output::LoadBalancerFullName => "loadBalancerFullName",
            Output::TargetGroupFullName => "targetGroupFullName",
        }
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A string output from a map of outputs (`None` when absent, empty or not a string).
pub(crate) fn get(
    outputs: &std::collections::BTreeMap<String, serde_json::Value>,
    o: Output,
) -> Option<&str> {
    outputs.get(o.key()).and_then(serde_json::Value::as_str).filter(|s| !s.is_empty())
}
