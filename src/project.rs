//! Where the project lives: the root holding `stacks/`, and the paths orch reads and writes under it.
use std::path::{Path, PathBuf};

use crate::error::OrchError;
use crate::runner::{Cmd, Runner};

/// The project root and the derived paths.
#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
}

impl Project {
    /// `ORCH_ROOT` if set, else the nearest ancestor of the working directory with a `stacks/` folder.
    pub fn discover(explicit: Option<&Path>) -> Result<Self, OrchError> {
        if let Some(root) = explicit {
            return Ok(Project { root: root.to_path_buf() });
        }
        let cwd = std::env::current_dir()
            .map_err(|e| OrchError::io("reading the working directory", e))?;
        let found = cwd.ancestors().find(|dir| dir.join("stacks").is_dir());
        match found {
            Some(root) => Ok(Project { root: root.to_path_buf() }),
            None => Err(OrchError::NoProject { cwd }),
        }
    }

    pub fn stacks_dir(&self) -> PathBuf {
        self.root.join("stacks")
    }
    pub fn stack_file(&self, env: &str) -> PathBuf {
        self.stacks_dir().join(format!("{env}.yaml"))
    }
    pub fn templates_dir(&self) -> PathBuf {
        self.root.join("pulumi")
    }
    pub fn build_dir(&self, env: &str) -> PathBuf {
        self.root.join("build").join(env)
    }
    pub fn state_dir(&self, env: &str) -> PathBuf {
        self.root.join(".orch").join(env)
    }
    pub fn pages_dir(&self) -> PathBuf {
        self.root.join("app").join("pages")
    }
    /// The price table of `region` (`data/prices/<region>.json`), read by `orch cost`.
    pub fn price_table(&self, region: &str) -> PathBuf {
        self.root.join("data").join("prices").join(format!("{region}.json"))
    }

    /// The source revision: `git rev-parse HEAD`, `-dirty` when the tree has changes, or `unknown`.
    pub fn revision(&self, runner: &dyn Runner) -> String {
        let head = runner
            .run(&Cmd::new("git", ["rev-parse", "HEAD"]).dir(&self.root))
            .ok()
            .filter(|o| o.success());
        let Some(head) = head else { return "unknown".into() };
        let dirty = runner
            .run(&Cmd::new("git", ["status", "--porcelain"]).dir(&self.root))
            .ok()
            .is_some_and(|o| o.success() && !o.stdout.trim().is_empty());
        format!("{}{}", head.stdout.trim(), if dirty { "-dirty" } else { "" })
    }

    /// The environments that have a stack file, sorted.
    pub fn envs(&self) -> Vec<String> {
        let mut envs: Vec<String> = std::fs::read_dir(self.stacks_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                name.strip_suffix(".yaml").map(str::to_owned)
            })
            .collect();
        envs.sort();
        envs
    }
}
