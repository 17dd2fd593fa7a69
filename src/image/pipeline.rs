//! The steps of `orch build` (and of `orch up`, which reuses them): compile or take the static
//! binary, check its toolchain against the pin, plan the root filesystem, build the layers, label
//! the image with what it was built from, write the layout; and `publish` pushes the layout to the
//! environment's registry (ECR on AWS) and records the result.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use oci_client::secrets::RegistryAuth;

use super::binary::{self, Profile};
use super::layout::{self, RunConfig};
use super::push::{self, Destination, PushReport};
use super::rootfs::{self, Inputs};
use super::{cabundle, ecr, layer, provenance, source, ImageError};
use crate::config::{Stack, Target};
use crate::printer::Printer;
use crate::project::Project;
use crate::runner::Runner;
use crate::settings::Settings;

/// The port the app listens on inside the image (deployments map it as they like).
pub const IMAGE_PORT: u16 = 8080;

/// A finished build.
#[derive(Debug, Clone)]
pub struct Built {
    pub layout_dir: PathBuf,
    pub digest: oci_spec::image::Digest,
    pub tag: String,
    /// `(layer name, digest, compressed bytes)`, base first.
    pub layers: Vec<(String, String, u64)>,
    /// The image's labels (also its manifest's annotations): revision, toolchain, target, bundle.
    pub labels: BTreeMap<String, String>,
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

/// The root filesystem's inputs for `project`: the CA bundle is the pinned Mozilla set
/// ([`cabundle`]) followed by the checked-in `app/certs/*.pem`.
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
        ca_bundle: cabundle::mozilla_pem(),
        extra_certs,
        pages: pages.is_dir().then_some(pages),
    })
}

/// What the `dev.orch.ca-bundle` label says for `inputs`.
fn bundle_label(inputs: &Inputs) -> String {
    let mut label = cabundle::describe(&inputs.ca_bundle);
    let extras: Vec<String> = inputs
        .extra_certs
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    if !extras.is_empty() {
        label.push_str(&format!(" + app/certs/{{{}}}", extras.join(",")));
    }
    label
}

/// Build the image for `stack` into `build/<env>/image/`.
pub(crate) fn build(
    project: &Project,
    stack: &Stack,
    runner: &dyn Runner,
    printer: &Printer,
    settings: &Settings,
) -> Result<Built, ImageError> {
    let layout_dir = project.build_dir(&stack.name).join("image");
    build_into(project, runner, printer, &layout_dir, settings)
}

/// Build the image of `project`'s checkout into the layout folder `layout_dir`, from the app
/// binary `ORCH_APP_BINARY` names, else compiled with the `ORCH_BUILD_PROFILE` profile.
pub(crate) fn build_into(
    project: &Project,
    runner: &dyn Runner,
    printer: &Printer,
    layout_dir: &Path,
    settings: &Settings,
) -> Result<Built, ImageError> {
    let binary = match settings.app_binary.clone() {
        Some(path) => {
            binary::check_static(&path)?;
            printer.progress(&format!("using the prebuilt app binary {}", path.display()));
            path
        }
        None => {
            let profile = Profile::from_settings(settings);
            let spinner =
                printer.spinner(format!("compiling app (static {}, {profile:?})", binary::TARGET));
            let built = binary::build(runner, &project.root, profile);
            spinner.finish_and_clear();
            built?
        }
    };
    let toolchain = provenance::toolchain_of(&binary)?;
    let pinned = provenance::pinned_channel(&binary::workspace(&project.root))?;
    provenance::check_pinned(&toolchain, pinned.as_deref(), &binary)?;
    let started = Instant::now();
    let source = source::describe(runner, &project.root);
    let spinner = printer.spinner("assembling image layers");
    let inputs = inputs(project, binary)?;
    let labels = provenance::labels(&source, &toolchain, binary::TARGET, &bundle_label(&inputs));
    let plans = rootfs::plan(&inputs)?;
    let mut blobs = Vec::new();
    let mut layers = Vec::new();
    for plan in &plans {
        let blob = layer::build(&plan.entries, source.epoch())?;
        layers.push((plan.name.to_string(), blob.digest.to_string(), blob.gz.len() as u64));
        blobs.push(blob);
    }
    let image = layout::assemble(blobs, &run_config(), &source, &labels)?;
    let tag = source.tag(&image.digest);
    layout::write_layout(layout_dir, &image, &tag)?;
    spinner.finish_and_clear();
    Ok(Built {
        layout_dir: layout_dir.to_owned(),
        digest: image.digest,
        tag,
        layers,
        labels,
        assembly_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Credentials for a configured registry: `ORCH_REGISTRY_USERNAME` / `ORCH_REGISTRY_PASSWORD`, or none.
pub(crate) fn registry_auth(s: &Settings) -> RegistryAuth {
    match (&s.registry_user, &s.registry_password) {
        (Some(user), Some(password)) => RegistryAuth::Basic(user.clone(), password.clone()),
        _ => RegistryAuth::Anonymous,
    }
}

/// Where `stack` pushes: `image.registry` if set (with the settings' credentials), else (AWS) the
/// account's ECR, ensured first.
pub(crate) async fn destination(
    stack: &Stack,
    printer: &Printer,
    settings: &Settings,
) -> Result<Destination, ImageError> {
    let repository = stack.image.repository.clone();
    if let Some(registry) = &stack.image.registry {
        let auth = registry_auth(settings);
        return Ok(Destination { registry: registry.clone(), repository, auth });
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
pub(crate) async fn publish(
    project: &Project,
    stack: &Stack,
    printer: &Printer,
    settings: &Settings,
) -> Result<PushReport, ImageError> {
    let layout_dir = project.build_dir(&stack.name).join("image");
    let layout = layout::read_layout(&layout_dir)?;
    let tag = layout.tag.clone().unwrap_or_else(|| source::Source::unknown().tag(&layout.digest));
    if !source::tag_carries(&tag, &layout.digest) {
        return Err(ImageError::Layout {
            path: layout_dir,
            reason: format!("its tag {tag} does not carry its digest {}", layout.digest),
        });
    }
    let dest = destination(stack, printer, settings).await?;
    let report = push::push(&layout, &dest, &tag, printer).await?;
    let path = layout_dir.join("pushed.json");
    let text = serde_json::to_vec_pretty(&report).map_err(ImageError::spec)?;
    std::fs::write(&path, text)
        .map_err(|e| ImageError::io(format!("writing {}", path.display()), e))?;
    Ok(report)
}
