//! Renders an AWS environment's Pulumi YAML program from the handlebars templates in `pulumi/`:
//! [`render`] gives the program and its stack config as text, [`write`] puts them into `build/<env>/`,
//! [`Rendered::program_hash`] tells the deploy code whether anything changed.
mod context;
mod engine;
mod guard;
pub mod stackfile;

pub use context::{context, AWS_CLASSIC_VERSION, PAGE_404_MAX, TLS_POLICY};

use sha2::{Digest, Sha256};
use std::path::PathBuf;

use crate::config::{Stack, Target};
use crate::project::Project;

/// A rendered environment: `Pulumi.yaml` and `Pulumi.<env>.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The Pulumi YAML program (`Pulumi.yaml`).
    pub program: String,
    /// The stack configuration (`Pulumi.<env>.yaml`): static keys only; deploy-time keys are set by `orch up`.
    pub config: String,
}

impl Rendered {
    /// sha256 (hex) of the program and the config: equal hashes mean nothing to deploy.
    pub fn program_hash(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.program.as_bytes());
        hasher.update([0u8]);
        hasher.update(self.config.as_bytes());
        hex::encode(hasher.finalize())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("environment `{env}` runs on the local target, which has no Pulumi program")]
    LocalTarget { env: String },
    #[error("no templates: {} does not exist", dir.display())]
    NoTemplates { dir: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{key}` = `{value}` would be rendered unescaped and holds characters outside letters, digits and . _ / : @ % ~ + -")]
    Unsafe { key: String, value: String },
    #[error("template {name}: {message}")]
    Template { name: String, message: String },
    #[error("the ALB's 404 page {} is missing", path.display())]
    PageMissing { path: PathBuf },
    #[error("the ALB's 404 page {} is {size} bytes; a fixed response holds at most {PAGE_404_MAX}", path.display())]
    PageTooLarge { path: PathBuf, size: usize },
}

impl RenderError {
    /// The next thing to do.
    pub fn hint(&self) -> String {
        match self {
            RenderError::LocalTarget { .. } => "the local target runs without Pulumi: use `orch up --env local`; render an AWS env, e.g. `orch render --env dev`".into(),
            RenderError::NoTemplates { .. } => "run orch from the project checkout (it holds pulumi/), or pass --root".into(),
            RenderError::Template { .. } => "fix the template under pulumi/ and run `orch render` again".into(),
            RenderError::Unsafe { .. } => "fix the value in stacks/<env>.yaml (`orch check` names the key) and run `orch render` again".into(),
            RenderError::PageMissing { .. } | RenderError::PageTooLarge { .. } => {
                format!("write app/pages/404-alb.html (at most {PAGE_404_MAX} bytes) and run `orch render` again")
            }
            RenderError::Read { .. } | RenderError::Write { .. } => "check the path's permissions and run `orch render` again".into(),
        }
    }
}

/// Render the program and stack config of an AWS environment.
pub fn render(project: &Project, stack: &Stack) -> Result<Rendered, RenderError> {
    render_with(project, stack, stack.protected)
}

/// The program with deletion protection off (database and load balancer), whatever the stack
/// says: what `orch down --unprotect` applies before it destroys a protected environment.
pub fn render_unprotected(project: &Project, stack: &Stack) -> Result<Rendered, RenderError> {
    render_with(project, stack, false)
}

fn render_with(
    project: &Project,
    stack: &Stack,
    deletion_protection: bool,
) -> Result<Rendered, RenderError> {
    if stack.target == Target::Local {
        return Err(RenderError::LocalTarget { env: stack.name.clone() });
    }
    let page = read_page(project)?;
    let mut data = context(stack, &page);
    data["deletionProtection"] = deletion_protection.into();
    guard::check(&data)?;
    let registry = engine::load(&project.templates_dir())?;
    let program = engine::render(&registry, "Pulumi.yaml", &data)?;
    Ok(Rendered { program, config: stack_config(stack) })
}

/// Write the rendered files into `build/<env>/`, keeping what pulumi and `orch up` wrote into the
/// stack file (see [`stackfile`]); returns that directory.
pub fn write(
    project: &Project,
    stack: &Stack,
    rendered: &Rendered,
) -> Result<PathBuf, RenderError> {
    write_restoring(project, stack, rendered, None)
}

/// [`write`], with the stack file of the recorded deployment laid under the rendered keys: what a
/// command that runs pulumi (drift's refresh, down's destroy) needs on a checkout whose `build/`
/// is empty or stale.
pub fn write_restoring(
    project: &Project,
    stack: &Stack,
    rendered: &Rendered,
    recorded: Option<&str>,
) -> Result<PathBuf, RenderError> {
    let dir = project.build_dir(&stack.name);
    write_into(&dir, &dir, stack, rendered, recorded)?;
    Ok(dir)
}

/// A program rendered into a private temporary folder (removed when dropped): what read-only
/// commands (`up --dry-run`, `drift`, a run about to be refused by the lock) use, so that only the
/// lock holder ever writes `build/<env>/` — never between its `config set-all` and `pulumi up`.
#[derive(Debug)]
pub struct Private {
    pub dir: tempfile::TempDir,
}

impl Private {
    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

/// [`write_restoring`] into a private temporary folder: the stack file is read from
/// `build/<env>/` (when there is one) but never written there.
pub fn write_private(
    project: &Project,
    stack: &Stack,
    rendered: &Rendered,
    recorded: Option<&str>,
) -> Result<Private, RenderError> {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("orch-{}-", stack.name))
        .tempdir()
        .map_err(|source| RenderError::Write { path: std::env::temp_dir(), source })?;
    write_into(tmp.path(), &project.build_dir(&stack.name), stack, rendered, recorded)?;
    Ok(Private { dir: tmp })
}

/// Write the program into `dir`, its stack file merged from the one in `from` and `recorded`.
fn write_into(
    dir: &std::path::Path,
    from: &std::path::Path,
    stack: &Stack,
    rendered: &Rendered,
    recorded: Option<&str>,
) -> Result<(), RenderError> {
    std::fs::create_dir_all(dir)
        .map_err(|source| RenderError::Write { path: dir.to_path_buf(), source })?;
    let stack_file = stack_file_name(&stack.name);
    let existing = match std::fs::read_to_string(from.join(&stack_file)) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(RenderError::Read { path: from.join(&stack_file), source }),
    };
    let config = stackfile::merge(existing.as_deref(), recorded, &rendered.config);
    for (name, text) in [("Pulumi.yaml".to_string(), &rendered.program), (stack_file, &config)] {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(|source| RenderError::Write { path: path.clone(), source })?;
    }
    Ok(())
}

/// `Pulumi.<env>.yaml`, the stack config file pulumi reads beside `Pulumi.yaml`.
pub fn stack_file_name(env: &str) -> String {
    format!("Pulumi.{env}.yaml")
}

fn read_page(project: &Project) -> Result<String, RenderError> {
    let path = project.pages_dir().join("404-alb.html");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(RenderError::PageMissing { path })
        }
        Err(source) => return Err(RenderError::Read { path, source }),
    };
    if text.len() > PAGE_404_MAX {
        return Err(RenderError::PageTooLarge { path, size: text.len() });
    }
    Ok(text)
}

/// `Pulumi.<env>.yaml`: the providers' region. `imageUri`, `certificateArn`, `hostedZoneId` and `amiId`
/// are set at deploy time by `orch up` (`pulumi config set`) and kept by [`write`].
fn stack_config(stack: &Stack) -> String {
    let mut config = serde_yaml::Mapping::new();
    config.insert("aws-native:region".into(), stack.region.clone().into());
    config.insert("aws:region".into(), stack.region.clone().into());
    let mut doc = serde_yaml::Mapping::new();
    doc.insert("config".into(), serde_yaml::Value::Mapping(config));
    let body = serde_yaml::to_string(&doc).unwrap_or_default();
    format!(
        "# Rendered by `orch render --env {}`; deploy-time keys are set by `orch up`.\n{body}",
        stack.name
    )
}
