//! Renders an AWS environment's Pulumi YAML program from the handlebars templates in `pulumi/`:
//! [`render`] gives the program and its stack config as text, [`write`] puts them into `build/<env>/`,
//! [`Rendered::program_hash`] tells the deploy code whether anything changed.
mod context;
mod engine;

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
            RenderError::PageMissing { .. } | RenderError::PageTooLarge { .. } => {
                format!("write app/pages/404-alb.html (at most {PAGE_404_MAX} bytes) and run `orch render` again")
            }
            RenderError::Read { .. } | RenderError::Write { .. } => "check the path's permissions and run `orch render` again".into(),
        }
    }
}

/// Render the program and stack config of an AWS environment.
pub fn render(project: &Project, stack: &Stack) -> Result<Rendered, RenderError> {
    if stack.target == Target::Local {
        return Err(RenderError::LocalTarget { env: stack.name.clone() });
    }
    let page = read_page(project)?;
    let data = context(stack, &page);
    let registry = engine::load(&project.templates_dir())?;
    let program = engine::render(&registry, "Pulumi.yaml", &data)?;
    Ok(Rendered { program, config: stack_config(stack) })
}

/// Write the rendered files into `build/<env>/`; returns that directory.
pub fn write(
    project: &Project,
    stack: &Stack,
    rendered: &Rendered,
) -> Result<PathBuf, RenderError> {
    let dir = project.build_dir(&stack.name);
    std::fs::create_dir_all(&dir)
        .map_err(|source| RenderError::Write { path: dir.clone(), source })?;
    for (name, text) in [
        ("Pulumi.yaml".to_string(), &rendered.program),
        (format!("Pulumi.{}.yaml", stack.name), &rendered.config),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(|source| RenderError::Write { path: path.clone(), source })?;
    }
    Ok(dir)
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

/// `Pulumi.<env>.yaml`: the providers' region. `imageUri`, `certificateArn` and `hostedZoneId` are set at
/// deploy time by `orch up` (`pulumi config set`), so they never appear here.
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
