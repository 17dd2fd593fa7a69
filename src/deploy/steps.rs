//! The three steps other modules own — render the program, build/push the image, verify the live
//! URL — behind one trait, so the executor is wired once and each seam can be swapped.
//! [`Wired`] is what `orch up` uses. Until `crate::render`, `crate::image` and `crate::verify` are
//! merged it carries stand-ins, each marked STUB below.
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::config::Stack;
use crate::error::OrchError;
use crate::printer::Printer;
use crate::project::Project;

/// A rendered program on disk and its config.
#[derive(Debug, Clone)]
pub struct Program {
    /// The folder holding `Pulumi.yaml` (build/<env>/).
    pub dir: PathBuf,
    /// sha256 of the rendered files.
    pub hash: String,
    pub config: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, String>,
}

/// An image by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `<registry>/<repository>@sha256:…` — what the program deploys.
    pub uri: String,
    pub digest: String,
}

pub trait Steps: Sync {
    /// Render the program into build/<env>/.
    fn render(&self, project: &Project, stack: &Stack) -> Result<Program, OrchError>;
    /// The image to deploy, by digest, built locally if needed; nothing is pushed.
    fn image(&self, project: &Project, stack: &Stack, printer: &Printer) -> impl Future<Output = Result<ImageRef, OrchError>> + Send;
    /// Make sure the image is in the registry; returns the bytes pushed.
    fn push(&self, project: &Project, stack: &Stack, image: &ImageRef, printer: &Printer) -> impl Future<Output = Result<u64, OrchError>> + Send;
    /// Run the acceptance suite against the live URL; `Ok(false)` is a failed check.
    fn verify(&self, url: &str, stack: &Stack, printer: &Printer) -> impl Future<Output = Result<bool, OrchError>> + Send;
}

/// The steps `orch up` runs.
#[derive(Debug, Default)]
pub struct Wired;

impl Steps for Wired {
    fn render(&self, project: &Project, stack: &Stack) -> Result<Program, OrchError> {
        // STUB until crate::render lands: a placeholder program whose resource type does not exist,
        // so a real pulumi refuses it (nothing can be created by accident) while the fake runs it.
        let dir = project.build_dir(&stack.name);
        std::fs::create_dir_all(&dir).map_err(|e| OrchError::io(format!("creating {}", dir.display()), e))?;
        let text = placeholder_program(stack);
        std::fs::write(dir.join("Pulumi.yaml"), &text).map_err(|e| OrchError::io("writing Pulumi.yaml", e))?;
        let mut config = BTreeMap::new();
        config.insert("aws-native:region".to_string(), stack.region.clone());
        Ok(Program { dir, hash: format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes()))), config, secrets: BTreeMap::new() })
    }

    async fn image(&self, _project: &Project, stack: &Stack, _printer: &Printer) -> Result<ImageRef, OrchError> {
        // STUB until crate::image lands: ORCH_IMAGE names an image already pushed, by digest.
        let Some(uri) = std::env::var("ORCH_IMAGE").ok().filter(|v| !v.is_empty()) else {
            return Err(OrchError::NotBuilt { command: "up", what: format!("building the image for `{}` (set ORCH_IMAGE=<registry>/<repo>@sha256:… to deploy a pushed image)", stack.name) });
        };
        let Some((_, digest)) = uri.split_once('@').filter(|(_, d)| d.starts_with("sha256:") && d.len() == 71) else {
            return Err(OrchError::Usage(format!("ORCH_IMAGE must be <registry>/<repository>@sha256:<64 hex>, got {uri}")));
        };
        Ok(ImageRef { digest: digest.to_string(), uri })
    }

    async fn push(&self, _project: &Project, _stack: &Stack, _image: &ImageRef, _printer: &Printer) -> Result<u64, OrchError> {
        // STUB until crate::image lands: an ORCH_IMAGE image is already in the registry.
        Ok(0)
    }

    async fn verify(&self, url: &str, stack: &Stack, printer: &Printer) -> Result<bool, OrchError> {
        // STUB until crate::verify lands: the health path answers 200 within two minutes.
        let target = format!("{}{}", url.trim_end_matches('/'), stack.health_check.path);
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(stack.domain.is_none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| OrchError::failed(format!("building the HTTP client: {e}"), "report this as a bug"))?;
        let spinner = printer.spinner(format!("verify: waiting for {target}"));
        let start = Instant::now();
        loop {
            let last = match client.get(&target).send().await {
                Ok(r) if r.status().is_success() => {
                    spinner.finish_and_clear();
                    printer.progress(&format!("  verify: {target} answered {}", r.status()));
                    return Ok(true);
                }
                Ok(r) => format!("HTTP {}", r.status()),
                Err(e) => e.to_string(),
            };
            if start.elapsed() > verify_timeout() {
                spinner.finish_and_clear();
                printer.warn(&format!("verify: {target} never answered 200 (last: {last})"));
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

fn verify_timeout() -> Duration {
    let secs = std::env::var("ORCH_VERIFY_TIMEOUT").ok().and_then(|v| v.parse().ok()).unwrap_or(120);
    Duration::from_secs(secs)
}

fn placeholder_program(stack: &Stack) -> String {
    let mut out = String::from(
        "# PLACEHOLDER written by orch's deploy module until the renderer (crate::render) is merged.\n\
         # The resource type below does not exist: a real pulumi refuses this program.\n\
         name: orch\nruntime: yaml\nconfig:\n  imageUri: {type: string}\n  certificateArn: {type: string}\n  hostedZoneId: {type: string, default: \"\"}\nresources:\n",
    );
    for name in ["vpc", "loadBalancer", "launchTemplate", "autoScalingGroup", "database"] {
        out.push_str(&format!("  {name}:\n    type: orch:placeholder:Resource\n    properties:\n      env: {}\n      image: ${{imageUri}}\n", stack.name));
    }
    out
}
