//! Per-environment stack configuration (`stacks/<env>.yaml`): typed, strict (`deny_unknown_fields`),
//! with defaults documented on each field, loaded and validated all at once by [`load`].
mod backend;
mod cost;
mod inputs;
mod load;
mod locate;
mod rollout;
mod shared;
mod slo;
mod validate;

pub use backend::Backend;
pub use cost::{CostSettings, Profile};
pub use inputs::is_env_name;
pub use load::{load, load_str, ConfigError, Problem};
pub use locate::locate;
pub use rollout::{RolloutSettings, Strategy};
pub use shared::check_shared_repository;
pub use slo::SloSettings;
pub use validate::{is_ami_id, is_dns_name};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where an environment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Processes, a load balancer and a supervisor on this machine.
    Local,
    /// AWS, through a rendered Pulumi YAML program.
    Aws,
}

/// One environment's stack, as written in `stacks/<env>.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stack {
    /// The environment's name; filled in from the file name.
    #[serde(skip_deserializing)]
    pub name: String,
    pub target: Target,
    /// AWS region (`local` for the local target).
    pub region: String,
    /// Exactly two distinct availability zones of `region`.
    pub zones: Vec<String>,
    /// Optional public domain; without it the load balancer gets a self-signed certificate.
    #[serde(default)]
    pub domain: Option<Domain>,
    /// `up`/`down` ask for confirmation (or `--yes`) on protected environments.
    #[serde(default)]
    pub protected: bool,
    pub instances: Instances,
    /// Scaling on load between `instances.min` and `instances.max`; required when max > min.
    #[serde(default)]
    pub scaling: Option<Scaling>,
    #[serde(default)]
    pub health_check: HealthCheck,
    pub database: Database,
    pub image: Image,
    #[serde(default)]
    pub pulumi: Option<PulumiSettings>,
    /// Local-target settings (ports, loopback ranges).
    #[serde(default)]
    pub local: Option<LocalSettings>,
    /// Tags put on every AWS resource.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// How much of the tier is duplicated per zone (aws); see [`Stack::profile`] for the default.
    #[serde(default, rename = "profile")]
    pub profile_choice: Option<Profile>,
    /// The usage `orch cost` assumes, and an optional monthly budget `orch check` holds the program to.
    #[serde(default)]
    pub cost: Option<CostSettings>,
    /// The service-level objective the error budget is counted against (`orch slo`).
    #[serde(default)]
    pub slo: Option<SloSettings>,
    /// How a new release replaces the running one (`rolling`, or `canary` steps judged against `slo`).
    #[serde(default)]
    pub rollout: RolloutSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    /// The environment's DNS name, e.g. `dev.example.com`.
    pub name: String,
    /// The parent zone that delegates to it, e.g. `example.com`.
    pub parent_zone: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instances {
    /// EC2 instance type (ignored locally).
    #[serde(rename = "type", default = "default_instance_type")]
    pub instance_type: String,
    pub min: u32,
    pub desired: u32,
    pub max: u32,
    /// The port the app listens on inside each instance.
    #[serde(default = "default_app_port")]
    pub port: u16,
    /// A pinned AMI id (`ami-…`); when absent `orch up` resolves `ami_parameter` at deploy time.
    #[serde(default)]
    pub ami: Option<String>,
    /// The public SSM parameter naming the current AMI, read by `orch up` (ignored locally).
    #[serde(default = "default_ami_parameter")]
    pub ami_parameter: String,
    /// Extra environment of every instance (never secrets); a change is a new release.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// Target tracking on requests per instance per minute (AWS: `ALBRequestCountPerTarget`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scaling {
    /// Requests per instance per minute the group is kept near (the policy's target value).
    pub target_requests_per_minute: u32,
    /// Seconds after a scale-out before the next one; on AWS the policy's instance warmup.
    #[serde(default = "default_scale_out_cooldown")]
    pub scale_out_cooldown_seconds: u32,
    /// Seconds after any scaling before a scale-in (local; AWS scales in on its own, gradually).
    #[serde(default = "default_scale_in_cooldown")]
    pub scale_in_cooldown_seconds: u32,
    /// Local: the window the load balancer's request counter is averaged over (AWS: one minute).
    #[serde(default = "default_scaling_window")]
    pub window_seconds: u32,
}

fn default_scale_out_cooldown() -> u32 {
    60
}
fn default_scale_in_cooldown() -> u32 {
    300
}
fn default_scaling_window() -> u32 {
    60
}

/// Amazon Linux 2023, x86_64: the AMI the user data is written for.
pub fn default_ami_parameter() -> String {
    "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// Liveness path probed by the load balancer.
    #[serde(default = "default_health_path")]
    pub path: String,
    #[serde(default = "default_interval")]
    pub interval_seconds: u32,
    #[serde(default = "default_threshold")]
    pub healthy_threshold: u32,
    #[serde(default = "default_threshold")]
    pub unhealthy_threshold: u32,
    /// Seconds after launch before failing health checks lead to replacement.
    #[serde(default = "default_grace")]
    pub grace_period_seconds: u32,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            path: default_health_path(),
            interval_seconds: default_interval(),
            healthy_threshold: default_threshold(),
            unhealthy_threshold: default_threshold(),
            grace_period_seconds: default_grace(),
            timeout_seconds: default_timeout(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    pub engine: Engine,
    /// RDS instance class (aws only).
    #[serde(default)]
    pub instance_class: Option<String>,
    /// Allocated storage in GiB (aws only).
    #[serde(default)]
    pub storage_gb: Option<u32>,
    #[serde(default)]
    pub multi_az: bool,
    #[serde(default = "default_backup_days")]
    pub backup_days: u32,
    /// Name of an environment variable holding the database URL (local Postgres); never the URL itself.
    #[serde(default)]
    pub url_env: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// Repository name (ECR repository on AWS).
    pub repository: String,
    /// Registry host; on AWS it defaults to the account's ECR registry.
    #[serde(default)]
    pub registry: Option<String>,
    /// How many images the ECR lifecycle policy keeps.
    #[serde(default = "default_keep_images")]
    pub keep: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PulumiSettings {
    /// `s3://bucket[/prefix]` or `file://path`.
    pub backend: Backend,
    /// Pinned aws-native provider version.
    #[serde(default = "default_aws_native")]
    pub aws_native_version: String,
}

impl PulumiSettings {
    /// The backend URL pulumi is given (see [`Backend::pulumi_url`]).
    pub fn pulumi_url(&self, region: &str) -> String {
        self.backend.pulumi_url(region)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSettings {
    #[serde(default = "default_http_port")]
    pub http_port: u16,
    #[serde(default = "default_https_port")]
    pub https_port: u16,
    /// One loopback /24 per zone, in the order of `zones`.
    #[serde(default = "default_loopbacks")]
    pub loopback: Vec<String>,
}

impl Default for LocalSettings {
    fn default() -> Self {
        LocalSettings {
            http_port: default_http_port(),
            https_port: default_https_port(),
            loopback: default_loopbacks(),
        }
    }
}

impl Stack {
    /// Local settings, defaulted when the section is absent.
    pub fn local_settings(&self) -> LocalSettings {
        self.local.clone().unwrap_or_default()
    }
    /// The profile: as the stack says, else `standard` for a protected stack and `economy` otherwise.
    pub fn profile(&self) -> Profile {
        self.profile_choice.unwrap_or(if self.protected {
            Profile::Standard
        } else {
            Profile::Economy
        })
    }
    /// The cost assumptions, defaulted when the section is absent.
    pub fn cost_settings(&self) -> CostSettings {
        self.cost.clone().unwrap_or_default()
    }
}

fn default_instance_type() -> String {
    "t3.micro".into()
}
fn default_app_port() -> u16 {
    8080
}
fn default_health_path() -> String {
    "/healthz".into()
}
fn default_interval() -> u32 {
    10
}
fn default_threshold() -> u32 {
    2
}
fn default_grace() -> u32 {
    60
}
fn default_timeout() -> u32 {
    5
}
fn default_backup_days() -> u32 {
    7
}
fn default_keep_images() -> u32 {
    10
}
/// The pinned aws-native provider version (the one schema/aws-native.json was generated from).
pub fn default_aws_native() -> String {
    "1.79.0".into()
}
fn default_http_port() -> u16 {
    8080
}
fn default_https_port() -> u16 {
    8443
}
fn default_loopbacks() -> Vec<String> {
    vec!["127.0.1.0/24".into(), "127.0.2.0/24".into()]
}

/// A zone's loopback range as a network: `127.x.y.0/24` (a /24 inside 127.0.0.0/8, no host bits set)
/// is the only shape the local target takes; anything else is `None`.
pub fn loopback_net(range: &str) -> Option<ipnet::Ipv4Net> {
    let net: ipnet::Ipv4Net = range.parse().ok()?;
    let loopback = ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(127, 0, 0, 0), 8).ok()?;
    (net.prefix_len() == 24 && net.addr() == net.network() && loopback.contains(&net))
        .then_some(net)
}
