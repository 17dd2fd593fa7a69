//! Shared helpers: a scratch copy of the project, running the `orch` binary, and the test servers
//! that scripts/test.sh starts (skipped locally when absent, required under CI).
#![allow(dead_code)]
use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A temporary project holding a copy of `stacks/`, `pulumi/` and `app/pages/`.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["stacks", "pulumi", "app/pages", "schema"] {
            let from = repo().join(sub);
            if from.is_dir() {
                copy_dir(&from, &dir.path().join(sub));
            }
        }
        Scratch { dir }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap()
    }
    /// `orch` with `--root` set to this scratch project.
    pub fn orch(&self) -> assert_cmd::Command {
        let mut cmd = orch();
        cmd.env("ORCH_ROOT", self.path());
        cmd
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The `orch` binary with a clean environment for the variables it reads.
pub fn orch() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("orch").expect("orch binary");
    cmd.env_remove("ORCH_ENV").env_remove("ORCH_ROOT").env("NO_COLOR", "1");
    cmd
}

/// The value of a test-service variable set by scripts/test.sh. `None` means: skip this test
/// (locally). Under CI a missing service is a failure, never a silent skip.
pub fn service(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var_os("CI").is_some() => panic!("{var} is not set: run the tests through scripts/test.sh"),
        _ => {
            eprintln!("skipping: {var} not set (scripts/test.sh starts the service)");
            None
        }
    }
}
