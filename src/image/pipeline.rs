//! The steps of `orch build` (and of `orch up`, which reuses them): compile or take the static
//! binary, plan the root filesystem, build the layers, write the layout; and `publish` pushes
//! the layout to the environment's registry (ECR on AWS) and records the result.
use std::path::PathBuf;
use std::time::Instant;

use oci_client::secrets::RegistryAuth;

use super::binary::{self, Profile};
use super::layout::{self, RunConfig};
use super::push::{self, Destination, PushReport};
use super::rootfs::{self, Inputs};
use super::{ecr, layer, source, ImageError};
use crate::config::{Stack, Target};
use crate::printer::Printer;
use crate::project::Project;
use crate::runner::Runner;

/// Use this static binary instead of compiling the app (tests, figures, CI artifacts).
pub const BINARY_ENV: &str = "ORCH_APP_BINARY";
/// Take the CA bundle from here instead of the host's Debian bundle.
pub const CA_BUNDLE_ENV: &str = "ORCH_CA_BUNDLE";
/// The host CA bundle (Debian `ca-certificates`).
pub const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// The port the app listens on inside the image (deployments map it as they like).
pub const IMAGE_PORT: u16 = 8080;

/// A finished build.
#[derive(Debug, Clone)]
pub struct Built {
    pub layout_dir: PathBuf,
    pub digest: String,
    pub tag: String,
    /// `(layer name, digest, compressed bytes)`, base first.
    pub layers: Vec<(String, String, u64)>,
    /// Seconds spent assembling (layers, config, layout), compile excluded.
    pub assembly_seconds: f64,
}

impl Built {
    pub fn compressed_bytes(&self) -> u64 {
        self.layers.iter().map(|l| l.2).sum()
    }
}

/// What runs inside the image.
pub fn run_config() -> RunConfig {
    RunConfig {
        entrypoint: vec!["/app".into()],
        env: vec![
            ("BIND".into(), "0.0.0.0".into()),
            ("PORT".into(), IMAGE_PORT.to_string()),
            ("SSL_CERT_FILE".into(), format!("/{}", rootfs::CA_BUNDLE_PATH)),
        ],
        port: IMAGE_PORT,
    }
}

/// The root filesystem's inputs for `project`.
pub fn inputs(project: &Project, binary: PathBuf) -> Result<Inputs, ImageError> {
    let certs = project.root.join("app").join("certs");
    let extra_certs = if certs.is_dir() {
        rootfs::sorted_files(&certs)?
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "pem"))
            .collect()
    } else {
        vec![]
    };
    let pages = project.pages_dir();
    Ok(Inputs {
        binary,
        ca_bundle: crate::settings::get()
            .ca_bundle
            .clone()
            .unwrap_or_else(|| PathBuf::from(HOST_CA_BUNDLE)),
        extra_certs,
        pages: pages.is_dir().then_some(pages),
    })
}

/// Build the image for `stack` into `build/<env>/image/`.
pub fn build(
    project: &Project,
    stack: &Stack,
    runner: &dyn Runner,
    printer: &Printer,
) -> Result<Built, ImageError> {
    let binary = match crate::settings::get().app_binary.clone() {
        Some(path) => {
            binary::check_static(&path)?;
            printer.progress(&format!("using the prebuilt app binary {}", path.display()));
            path
        }
        None => {
            let profile = Profile::from_env()?;
            let spinner =
                printer.spinner(format!("compiling app (static {}, {profile:?})", binary::TARGET));
            let built = binary::build(runner, &project.root, profile);
            spinner.finish_and_clear();
            built?
        }
    };
    let started = Instant::now();
    let source = source::describe(runner, &project.root);
    let spinner = printer.spinner("assembling image layers");
    let plans = rootfs::plan(&inputs(project, binary)?)?;
    let mut blobs = Vec::new();
    let mut layers = Vec::new();
    for plan in &plans {
        let blob = layer::build(&plan.entries, source.epoch)?;
        layers.push((plan.name.to_string(), blob.digest.clone(), blob.gz.len() as u64));
        blobs.push(blob);
    }
    let image = layout::assemble(blobs, &run_config(), &source)?;
    let tag = source.tag(&image.digest);
    let layout_dir = project.build_dir(&stack.name).join("image");
    layout::write_layout(&layout_dir, &image, &tag)?;
    spinner.finish_and_clear();
    Ok(Built {
        layout_dir,
        digest: image.digest,
        tag,
        layers,
        assembly_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Credentials for a configured registry: `ORCH_REGISTRY_USERNAME` / `ORCH_REGISTRY_PASSWORD`, or none.
fn registry_auth() -> RegistryAuth {
    let s = crate::settings::get();
    match (&s.registry_user, &s.registry_password) {
        (Some(user), Some(password)) => RegistryAuth::Basic(user.clone(), password.clone()),
        _ => RegistryAuth::Anonymous,
    }
}

/// Where `stack` pushes: `image.registry` if set, else (AWS) the account's ECR, ensured first.
pub async fn destination(stack: &Stack, printer: &Printer) -> Result<Destination, ImageError> {
    let repository = stack.image.repository.clone();
    if let Some(registry) = &stack.image.registry {
        return Ok(Destination { registry: registry.clone(), repository, auth: registry_auth() });
    }
    if stack.target != Target::Aws {
        return Err(ImageError::NoRegistry { env: stack.name.clone() });
    }
    let client = aws_sdk_ecr::Client::new(&crate::aws::sdk_config(&stack.region).await);
    let (uri, actions) = ecr::ensure_repository(&client, &repository, stack.image.keep).await?;
    for action in &actions {
        printer.progress(&format!("ECR {repository}: {action:?}"));
    }
    let (proxy_host, auth) = ecr::login(&client).await?;
    let registry = uri.split_once('/').map_or(proxy_host, |(host, _)| host.to_owned());
    Ok(Destination { registry, repository, auth })
}

/// Push the built layout of `stack` and record the result in `build/<env>/image/pushed.json`.
pub async fn publish(
    project: &Project,
    stack: &Stack,
    printer: &Printer,
) -> Result<PushReport, ImageError> {
    let layout_dir = project.build_dir(&stack.name).join("image");
    let layout = layout::read_layout(&layout_dir)?;
    let tag = layout.tag.clone().unwrap_or_else(|| source::Source::unknown().tag(&layout.digest));
    let dest = destination(stack, printer).await?;
    let report = push::push(&layout, &dest, &tag, printer).await?;
    let path = layout_dir.join("pushed.json");
    let text = serde_json::to_vec_pretty(&report).map_err(ImageError::spec)?;
    std::fs::write(&path, text)
        .map_err(|e| ImageError::io(format!("writing {}", path.display()), e))?;
    Ok(report)
}
