//! Reading a stack file: unknown env, unreadable file, YAML and schema errors with file and line,
//! then every validation problem at once.
use std::fmt;
use std::path::{Path, PathBuf};

use super::{validate, Stack};
use crate::project::Project;

/// One validation problem: the key path at fault, its line if known, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown environment `{env}`: {} does not exist (environments: {})", path.display(), list(envs))]
    UnknownEnv { env: String, path: PathBuf, envs: Vec<String> },
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}{}: {message}", path.display(), at(*line, *column))]
    Parse { path: PathBuf, line: Option<usize>, column: Option<usize>, message: String },
    #[error("{} has {} problem(s):\n{}", path.display(), problems.len(), ProblemList(problems))]
    Invalid { path: PathBuf, problems: Vec<Problem> },
}

impl ConfigError {
    pub fn hint(&self) -> String {
        match self {
            ConfigError::UnknownEnv { envs, .. } => match envs.first() {
                Some(first) => {
                    format!("pass one of the existing environments, e.g. `--env {first}`")
                }
                None => "create a stack file under stacks/, e.g. stacks/local.yaml".into(),
            },
            ConfigError::Unreadable { path, .. } => {
                format!("check that {} exists and is readable", path.display())
            }
            ConfigError::Parse { path, .. } | ConfigError::Invalid { path, .. } => {
                format!(
                    "fix {} and run `orch check` again; docs/configuration.md lists every key",
                    path.display()
                )
            }
        }
    }
}

fn list(envs: &[String]) -> String {
    if envs.is_empty() {
        "none".into()
    } else {
        envs.join(", ")
    }
}

fn at(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match p.line {
                Some(line) => write!(f, "  - line {line}: `{}`: {}", p.key, p.message)?,
                None => write!(f, "  - `{}`: {}", p.key, p.message)?,
            }
        }
        Ok(())
    }
}

/// Load and validate `stacks/<env>.yaml` of `project`.
pub fn load(project: &Project, env: &str) -> Result<Stack, ConfigError> {
    let path = project.stack_file(env);
    let valid_name =
        !env.is_empty() && env.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_name || !path.exists() {
        return Err(ConfigError::UnknownEnv { env: env.to_owned(), path, envs: project.envs() });
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|source| ConfigError::Unreadable { path: path.clone(), source })?;
    load_str(&text, env, &path)
}

/// Parse and validate stack text as if read from `path`.
pub fn load_str(text: &str, env: &str, path: &Path) -> Result<Stack, ConfigError> {
    let mut stack: Stack = serde_yaml::from_str(text).map_err(|e| {
        let loc = e.location();
        ConfigError::Parse {
            path: path.to_path_buf(),
            line: loc.as_ref().map(|l| l.line()),
            column: loc.as_ref().map(|l| l.column()),
            message: e.to_string(),
        }
    })?;
    stack.name = env.to_owned();
    let mut problems = validate::validate(&stack);
    for p in &mut problems {
        p.line = super::locate(text, &p.key);
    }
    if problems.is_empty() {
        Ok(stack)
    } else {
        Err(ConfigError::Invalid { path: path.to_path_buf(), problems })
    }
}
