//! The three steps other modules own — render the program, build/push the image, verify the live
//! URL — behind one trait, so the executor is wired once and each seam can be swapped.
//! [`Wired`] is what `orch up` uses: render is `crate::render`, the image is built and pushed by
//! `crate::image` (or pinned by `ORCH_IMAGE`); verify is `crate::verify`'s suite, retried while the tier comes up.
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::Stack;
use crate::error::OrchError;
use crate::printer::Printer;
use crate::project::Project;
use crate::settings::Settings;

/// A rendered program on disk and its config.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    /// The folder holding `Pulumi.yaml` (build/<env>/).
    pub dir: PathBuf,
    /// sha256 of the rendered files.
    pub hash: String,
    pub config: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, String>,
    /// The private temporary folder `dir` is, for a read-only render (removed with the last clone).
    pub _scratch: Option<std::sync::Arc<crate::render::Private>>,
}

/// An image by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageRef {
    /// `<registry>/<repository>@sha256:…` — what the program deploys.
    pub uri: String,
    pub digest: oci_spec::image::Digest,
    /// Said to be in the registry already (pinned by `orch rollback` or `ORCH_IMAGE`), not built
    /// here: looked up by digest before anything changes.
    pub prebuilt: bool,
}

pub(crate) trait Steps: Sync {
    /// Render the program into build/<env>/; `recorded` is the stack file of the last recorded
    /// deployment, laid under the rendered keys (a fresh checkout has none on disk).
    fn render(
        &self,
        project: &Project,
        stack: &Stack,
        recorded: Option<&str>,
    ) -> Result<Program, OrchError>;
    /// Render the program as [`Steps::render`] does, but into a private temporary folder:
    /// build/<env>/ is only read (what the plan and a run about to be refused use).
    fn render_private(
        &self,
        project: &Project,
        stack: &Stack,
        recorded: Option<&str>,
    ) -> Result<Program, OrchError>;
    /// The image to deploy, by digest, built locally if needed; nothing is pushed.
    fn image(
        &self,
        project: &Project,
        stack: &Stack,
        printer: &Printer,
    ) -> impl Future<Output = Result<ImageRef, OrchError>> + Send;
    /// Make sure the image is in the registry; returns the bytes pushed.
    fn push(
        &self,
        project: &Project,
        stack: &Stack,
        image: &ImageRef,
        printer: &Printer,
    ) -> impl Future<Output = Result<u64, OrchError>> + Send;
    /// Run the acceptance suite against the live URL (`http_url`: where to test the redirect);
    /// `Ok(false)` is a failed check.
    fn verify(
        &self,
        project: &Project,
        stack: &Stack,
        url: &str,
        http_url: Option<&str>,
        printer: &Printer,
    ) -> impl Future<Output = Result<bool, OrchError>> + Send;
}

/// The steps `orch up` runs, with the settings they read (`ORCH_IMAGE`, the image build's, the
/// verify suite's).
#[derive(Debug)]
pub(crate) struct Wired<'a> {
    /// An image already in the registry to deploy instead of building (`orch rollback`).
    pinned: Option<ImageRef>,
    settings: &'a Settings,
}

impl<'a> Wired<'a> {
    pub(crate) fn new(settings: &'a Settings) -> Self {
        Wired { pinned: None, settings }
    }

    /// Deploy `image` (already pushed) instead of building one.
    pub(crate) fn pinned(image: ImageRef, settings: &'a Settings) -> Self {
        Wired { pinned: Some(image), settings }
    }
}

impl Steps for Wired<'_> {
    fn render(
        &self,
        project: &Project,
        stack: &Stack,
        recorded: Option<&str>,
    ) -> Result<Program, OrchError> {
        let rendered = crate::render::render(project, stack)?;
        // The stack file keeps what pulumi and the last `orch up` wrote (render::stackfile).
        let dir = crate::render::write_restoring(project, stack, &rendered, recorded)?;
        Ok(program(&rendered, dir, None))
    }

    fn render_private(
        &self,
        project: &Project,
        stack: &Stack,
        recorded: Option<&str>,
    ) -> Result<Program, OrchError> {
        let rendered = crate::render::render(project, stack)?;
        let private = crate::render::write_private(project, stack, &rendered, recorded)?;
        Ok(program(&rendered, private.path().to_path_buf(), Some(private)))
    }

    async fn image(
        &self,
        project: &Project,
        stack: &Stack,
        printer: &Printer,
    ) -> Result<ImageRef, OrchError> {
        // A rollback pins an image already in the registry, by digest; so does ORCH_IMAGE (a deploy
        // of what CI built). Otherwise the image is built here (nothing is pushed yet).
        if let Some(image) = &self.pinned {
            return Ok(image.clone());
        }
        // Checked when the settings were read: `<registry>/<repository>@sha256:<64 hex>`.
        if let Some(uri) = &self.settings.image {
            return Ok(ImageRef { digest: uri.digest.clone(), uri: uri.whole(), prebuilt: true });
        }
        let built = tokio::task::block_in_place(|| {
            crate::image::build(project, stack, &crate::runner::Duct, printer, self.settings)
        })?;
        let registry = registry_host(stack).await?;
        Ok(ImageRef {
            uri: format!("{registry}/{}@{}", stack.image.repository, built.digest),
            digest: built.digest,
            prebuilt: false,
        })
    }

    async fn push(
        &self,
        project: &Project,
        stack: &Stack,
        image: &ImageRef,
        printer: &Printer,
    ) -> Result<u64, OrchError> {
        if self.pinned.is_some() || self.settings.image.is_some() {
            return Ok(0); // a pinned image is already in the registry
        }
        let report = crate::image::publish(project, stack, printer, self.settings).await?;
        if report.digest != image.digest {
            let (held, built) = (report.digest.to_string(), image.digest.to_string());
            return Err(super::DeployError::RegistryMismatch { held, built }.into());
        }
        Ok(report.bytes_uploaded)
    }

    async fn verify(
        &self,
        project: &Project,
        stack: &Stack,
        url: &str,
        http_url: Option<&str>,
        printer: &Printer,
    ) -> Result<bool, OrchError> {
        // The acceptance suite `orch verify` runs, retried until it passes or ORCH_VERIFY_TIMEOUT.
        let opts = crate::verify::options_for_aws(
            Some(&project.pages_dir()),
            stack.domain.is_some(),
            http_url.map(str::to_string),
            VERIFY_REQUESTS,
            self.settings.verify_ca.as_deref(),
        )
        .map_err(OrchError::Usage)?;
        let spinner = printer.spinner(format!("verify: {url}"));
        let interval = crate::deploy::execute::poll(self.settings).max(Duration::from_secs(1));
        let timeout = verify_timeout(self.settings);
        let report = crate::verify::until_passed(url, &opts, timeout, interval, |r| {
            let failed: Vec<_> =
                r.checks.iter().filter(|c| !c.passed).map(|c| c.name.as_str()).collect();
            spinner.set_message(format!("verify: {url} (waiting: {})", failed.join(", ")));
        })
        .await;
        spinner.finish_and_clear();
        if report.passed() {
            printer.progress(&format!(
                "✓ verify: {} instance(s) in {} answered; redirect, HTTPS and our 404 page checked",
                report.instances.len(),
                report.zones.join(", ")
            ));
        } else {
            for line in report.table().lines() {
                printer.warn(&format!("verify: {line}"));
            }
        }
        Ok(report.passed())
    }
}

/// The program rendered into `dir`. The rendered config is the stack's config file itself; orch
/// adds only deploy-time keys.
fn program(
    rendered: &crate::render::Rendered,
    dir: PathBuf,
    scratch: Option<crate::render::Private>,
) -> Program {
    Program {
        dir,
        hash: format!("sha256:{}", rendered.program_hash()),
        config: BTreeMap::new(),
        secrets: BTreeMap::new(),
        _scratch: scratch.map(std::sync::Arc::new),
    }
}

/// Requests the post-deploy suite spreads over the instances (as `orch verify`'s default).
const VERIFY_REQUESTS: u32 = 24;

/// The registry host images are pushed to: `image.registry`, or the account's ECR endpoint (read-only lookup).
async fn registry_host(stack: &Stack) -> Result<String, OrchError> {
    if let Some(registry) = &stack.image.registry {
        return Ok(registry.clone());
    }
    let client = aws_sdk_ecr::Client::new(&crate::aws::sdk_config(&stack.region).await);
    let (host, _) = crate::image::ecr::login(&client).await?;
    Ok(host)
}

fn verify_timeout(settings: &Settings) -> Duration {
    settings.verify_timeout.unwrap_or(Duration::from_secs(600))
}
