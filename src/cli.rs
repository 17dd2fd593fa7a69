//! The command line, declared with clap derive; the doc comments are the help text.
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Deploy and check a load-balanced HTTPS web tier: on AWS through Pulumi YAML, or on this machine.
///
/// Exit codes: 0 ok, 1 a finding (drift, unhealthy, failed check), 2 usage/config error or orch failure.
#[derive(Debug, Parser)]
#[command(name = "orch", version, propagate_version = true, max_term_width = 100)]
pub(crate) struct Cli {
    /// Environment: the name of a stack file under stacks/ (local, dev, prod, ...)
    #[arg(long, short = 'e', global = true, env = "ORCH_ENV", default_value = "local")]
    pub env: String,

    /// Project root (default: the nearest parent folder holding stacks/)
    #[arg(long, global = true, env = "ORCH_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// More logging on stderr (-v debug, -vv trace)
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors and data; no progress on stderr
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Bring the environment up, or converge it if it is already up
    Up(UpArgs),
    /// Show where the environment stands: instances by zone, health, URLs
    Status(ReportArgs),
    /// Report drift between the code and what is deployed (exit 1 when there is drift)
    Drift(ReportArgs),
    /// Render the environment's Pulumi YAML program into build/<env>/
    Render,
    /// Render and check the program offline: schema, references and policy rules
    Check(ReportArgs),
    /// What the rendered program costs a month, line by line, before anything exists
    ///
    /// Prices come from data/prices/<region>.json (on-demand, with each entry's AWS Price List
    /// source and date); usage-driven items from the stack's `cost:` assumptions. A resource type
    /// that is neither priced nor known to be free stops with exit 2.
    Cost(ReportArgs),
    /// The error budget of the stack's `slo:` objective: requests, failures, budget spent, burn
    /// rates over 1 h and 6 h, p99 latency (exit 1 when the budget is exhausted)
    ///
    /// Local: from the load balancer's access log. `orch up` refuses while the budget is exhausted,
    /// unless `--force`.
    Slo(ReportArgs),
    /// Build the app's OCI image into build/<env>/image/ (and push it with --push)
    Build(BuildArgs),
    /// Run the acceptance suite against a deployed URL
    Verify(VerifyArgs),
    /// Tear the environment down, keeping its data and names
    ///
    /// Local: the tier stops; the database file is kept. AWS: `pulumi destroy` under the deploy lock and
    /// the deployment record retired; the state bucket, hosted zone and certificate are kept.
    Down(DownArgs),
    /// List the releases: time, release, image digest, revision, outcome, who ran it (* = live)
    Releases(ReportArgs),
    /// Redeploy an earlier release by digest, without a build
    ///
    /// Through the same lock, plan, rollout and verify as `orch up`. Default: the deployed release
    /// before the live one. Local: the tier must be running.
    Rollback(RollbackArgs),
    /// Show the instances' logs, or the load balancer's access log, merged in time order
    ///
    /// Each line is prefixed with its time, instance and zone (`-` where unknown). Local: the files
    /// under .orch/<env>/ (instances/*.log, the retired instances' instances/retired/*.log, and
    /// access.log with --access). AWS: the CloudWatch log group /orch/<env>/app, one stream per
    /// instance.
    Logs(LogsArgs),
    /// Local-target operations: zone drills and the supervisor
    #[command(subcommand)]
    Local(LocalCommand),
    /// Print shell completions
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// Print the report as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Print the plan and change nothing (building the image to name its digest is allowed)
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: print the plan as JSON on stdout
    #[arg(long, requires = "dry_run")]
    pub json: bool,
    /// Do not ask for confirmation on a protected environment
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Local target: keep running in the background (state under .orch/local/)
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// Deploy even when nothing changed since the last recorded deployment, or past an exhausted
    /// error budget (the reason is kept with the release)
    #[arg(long)]
    pub force: bool,
    /// Remove a stale deploy lock left by a crashed run (use with care)
    #[arg(long)]
    pub force_unlock: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DownArgs {
    /// Print the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation on a protected environment
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Remove a stale deploy lock left by a crashed run (AWS targets; use with care)
    #[arg(long)]
    pub force_unlock: bool,
    /// Tear down a protected environment: turn deletion protection off (`pulumi up --target` the
    /// database and the load balancer), take a
    /// final database snapshot and wait for it, then destroy. Without it, `down` refuses a
    /// protected environment and changes nothing
    #[arg(long)]
    pub unprotect: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RollbackArgs {
    /// The release to go back to: a release id from `orch releases`, or an image digest (or at
    /// least 7 hex digits of it)
    #[arg(long, value_name = "RELEASE|DIGEST")]
    pub to: Option<String>,
    /// Do not ask for confirmation on a protected environment
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// Keep printing new lines, of new instances too, until Ctrl-C
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only lines from this long ago on (`10m`, `1h30m`, `2days`) or from this time on (RFC 3339)
    #[arg(long, value_name = "DURATION|TIME")]
    pub since: Option<String>,
    /// Only the lines of this instance (with --access: the requests it answered)
    #[arg(long, value_name = "ID")]
    pub instance: Option<String>,
    /// Only the lines of instances in this zone (a zone of the stack file)
    #[arg(long)]
    pub zone: Option<String>,
    /// The requests instead: locally the load balancer's access log; on AWS, where the ALB's own
    /// log is not kept, the app's per-request lines
    #[arg(long)]
    pub access: bool,
    /// One JSON object per line: time, instance, zone, source, message, fields
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    /// Push the image to the environment's registry after building it
    #[arg(long)]
    pub push: bool,
    /// Rebuild the current checkout and check that it gives this image (exit 0), else list the
    /// layers and labels that differ (exit 1)
    ///
    /// DIGEST is `sha256:…` or `registry/repository@sha256:…`. The image to compare with is read
    /// from build/<env>/image/ if that is it, else from the registry (the environment's, or the
    /// one the reference names). The rebuild goes to build/<env>/verify/.
    #[arg(long, value_name = "DIGEST", conflicts_with = "push")]
    pub verify: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Base URL of the tier, e.g. https://127.0.0.1:8443 (default: the environment's URL)
    pub url: Option<String>,
    /// How many HTTPS requests to spread over the instances
    #[arg(long, default_value_t = 24)]
    pub requests: u32,
    /// Accept a self-signed certificate
    #[arg(long, short = 'k')]
    pub insecure: bool,
    /// Print the results as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum LocalCommand {
    /// Take a zone down: its instances die and launches there fail until `zone-up`
    ZoneDown {
        /// The zone, e.g. local-a
        zone: String,
    },
    /// Bring a zone back; the supervisor rebalances onto it
    ZoneUp {
        /// The zone, e.g. local-a
        zone: String,
    },
    /// Run the local tier in the foreground (what `up --detach` starts in the background)
    #[command(hide = true)]
    Serve,
}
