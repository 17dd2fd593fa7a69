//! The app as one static x86_64 Linux executable: glibc linked statically
//! (`-C target-feature=+crt-static`, an explicit `--target` so build scripts stay dynamic),
//! compiled through the [`Runner`], then checked to need no program interpreter. The folders
//! that differ between machines (checkout, cargo home, target directory) are mapped to fixed names
//! for rustc and the C compiler, so they do not end up in the executable, and the C compiler's
//! `__DATE__`/`__TIME__` are fixed (`SOURCE_DATE_EPOCH`), so neither does the build time.
use std::path::{Path, PathBuf};

use object::read::elf::{ElfFile64, ProgramHeader};
use object::{Architecture, LittleEndian, Object};

use super::ImageError;
use crate::runner::{Cmd, Runner};

/// The target the image's binary is built for.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Cargo profile: `release` for real images, `dev` (`ORCH_BUILD_PROFILE=dev`) for quick test builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Release,
    Dev,
}

impl Profile {
    /// From `ORCH_BUILD_PROFILE` (`release` when unset; checked when the settings were read).
    pub(crate) fn from_settings(settings: &crate::settings::Settings) -> Self {
        if settings.dev_build {
            Profile::Dev
        } else {
            Profile::Release
        }
    }
}

/// The cargo command that builds the static app binary in the workspace at `root`.
pub fn command(root: &Path, profile: Profile) -> Cmd {
    let mut args = vec![
        "build",
        "--locked",
        "-p",
        "app",
        "--bin",
        "app",
        "--target",
        TARGET,
        "--message-format=json-render-diagnostics",
    ];
    if profile == Profile::Release {
        args.push("--release");
    }
    let workspace = workspace(root);
    let remaps = path_remaps(&workspace);
    let mut rustflags = vec!["-C".to_string(), "target-feature=+crt-static".to_string()];
    rustflags.extend(
        remaps.iter().map(|(from, to)| format!("--remap-path-prefix={}={to}", from.display())),
    );
    let cflags: Vec<String> = remaps
        .iter()
        .map(|(from, to)| format!("-ffile-prefix-map={}={to}", from.display()))
        .filter(|flag| !flag.contains(char::is_whitespace))
        .collect();
    let mut cmd = Cmd::new("cargo", args);
    for inherited in std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()) {
        if leaks_into_builds(&inherited) {
            cmd = cmd.env_remove(inherited);
        }
    }
    cmd.env(RUSTFLAGS_ENV, rustflags.join("\x1f"))
        .env(format!("CFLAGS_{}", TARGET.replace('-', "_")), cflags.join(" "))
        .env("CARGO_INCREMENTAL", "0")
        .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
        .dir(workspace)
}

/// Variables cargo sets for the crate it builds or tests (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`,
/// `CARGO_BIN_EXE_*`, …), which orch inherits when cargo or a test runner started it. Passed on,
/// they reach the app's build scripts (ring's records `CARGO_MANIFEST_DIR`), so the same app
/// would be compiled again, from ring up, whenever orch is started another way. Likewise a
/// workspace wrapper and its arguments (clippy's, when orch runs under a linted test build): the
/// image's app is compiled by rustc itself.
fn leaks_into_builds(name: &str) -> bool {
    ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_BIN_", "CARGO_CRATE_"]
        .iter()
        .any(|p| name.starts_with(p))
        || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR"].contains(&name)
        || ["RUSTC_WORKSPACE_WRAPPER", "CLIPPY_ARGS"].contains(&name)
}

/// The build time the C compiler writes for `__DATE__` and `__TIME__` (mimalloc's `options.c`
/// prints both in its verbose banner): a constant, so the executable does not record when, or in
/// which time zone, it was compiled. GCC and Clang read `SOURCE_DATE_EPOCH` and then use UTC. A
/// constant rather than the commit time: cargo reruns the C builds (SQLite, ring, mimalloc) when the
/// variable changes (cc declares it with `rerun-if-env-changed`), so the commit time would recompile
/// them, and change the executable, on every commit, whether the app changed or not.
pub const SOURCE_DATE_EPOCH: &str = "0";

/// How the rustc flags are passed: unit-separated, so paths with spaces survive.
pub const RUSTFLAGS_ENV: &str = "CARGO_ENCODED_RUSTFLAGS";

/// The machine-specific folders rustc (panic locations, debug info) and the C compiler (`__FILE__`)
/// would write into the executable, each with the fixed name it gets instead. Later entries are
/// more specific (the default target directory is inside the checkout) and win.
pub fn path_remaps(workspace: &Path) -> Vec<(PathBuf, &'static str)> {
    let mut remaps = vec![(workspace.to_path_buf(), "/src")];
    if let Ok(home) = home::cargo_home() {
        remaps.push((home, "/cargo"));
    }
    let target = ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR"]
        .into_iter()
        .find_map(std::env::var_os)
        .filter(|t| !t.is_empty())
        .map_or_else(|| workspace.join("target"), |t| workspace.join(t));
    remaps.push((target, "/target"));
    remaps
}

/// The workspace holding the app's sources: the project's own, or else the checkout orch was built
/// from (a project folder may hold only stacks, templates and pages).
pub fn workspace(root: &Path) -> PathBuf {
    let has_app = |dir: &Path| {
        dir.join("Cargo.toml").is_file() && dir.join("app").join("Cargo.toml").is_file()
    };
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR"));
    if has_app(root) || !has_app(checkout) {
        root.to_path_buf()
    } else {
        checkout.to_path_buf()
    }
}

/// Compile the app and return the path of the static executable.
pub fn build(runner: &dyn Runner, root: &Path, profile: Profile) -> Result<PathBuf, ImageError> {
    let cmd = command(root, profile);
    let out =
        runner.run(&cmd).map_err(|e| ImageError::io(format!("running `{}`", cmd.display()), e))?;
    if !out.success() {
        let tail: Vec<&str> = out.stderr.lines().rev().take(40).collect();
        let stderr = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        return Err(ImageError::Compile { command: cmd.display(), code: out.code, stderr });
    }
    let path = executable_from_messages(&out.stdout).ok_or_else(|| ImageError::Compile {
        command: cmd.display(),
        code: out.code,
        stderr: "cargo reported no executable for the `app` binary".into(),
    })?;
    check_static(&path)?;
    Ok(path)
}

/// The `app` executable path from cargo's JSON messages.
fn executable_from_messages(stdout: &str) -> Option<PathBuf> {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "app")
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .next_back()
}

/// Fail unless `path` is an x86_64 ELF executable without a `PT_INTERP` program header (no dynamic
/// loader, hence no shared libraries needed at run time).
pub fn check_static(path: &Path) -> Result<(), ImageError> {
    let bytes = std::fs::read(path)
        .map_err(|e| ImageError::io(format!("reading {}", path.display()), e))?;
    let not_static = |reason: String| ImageError::NotStatic { path: path.to_owned(), reason };
    let elf = ElfFile64::<LittleEndian>::parse(&*bytes)
        .map_err(|e| not_static(format!("not a little-endian ELF64 file ({e})")))?;
    if elf.architecture() != Architecture::X86_64 {
        return Err(not_static(format!("built for {:?}, not x86_64", elf.architecture())));
    }
    let endian = elf.endian();
    if elf.elf_program_headers().iter().any(|h| h.p_type(endian) == object::elf::PT_INTERP) {
        return Err(not_static("it has a PT_INTERP header (it is dynamically linked)".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{Output, Recording};

    #[test]
    fn the_cargo_command_links_glibc_statically_for_an_explicit_target() {
        let project = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(project.path().join("app")).unwrap();
        std::fs::write(project.path().join("Cargo.toml"), "").unwrap();
        std::fs::write(project.path().join("app/Cargo.toml"), "").unwrap();
        let release = command(project.path(), Profile::Release);
        assert_eq!(
            release.display(),
            "cargo build --locked -p app --bin app --target x86_64-unknown-linux-gnu --message-format=json-render-diagnostics --release"
        );
        // The test runner set CARGO_MANIFEST_DIR for this process, as cargo does for orch when
        // started by `cargo run`: the app's build must not inherit it.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        assert!(release.env_remove.iter().any(|k| k == "CARGO_MANIFEST_DIR"), "{release:?}");
        assert!(leaks_into_builds("CARGO_BIN_EXE_orch") && leaks_into_builds("CARGO_PKG_NAME"));
        assert!(!leaks_into_builds("CARGO_HOME") && !leaks_into_builds("CARGO_TARGET_DIR"));
        let env: std::collections::HashMap<_, _> = release.env.iter().cloned().collect();
        let rustflags: Vec<&str> = env[RUSTFLAGS_ENV].split('\x1f').collect();
        assert_eq!(rustflags[..2], ["-C", "target-feature=+crt-static"]);
        let root = project.path().display();
        assert!(rustflags.contains(&format!("--remap-path-prefix={root}=/src").as_str()));
        assert!(rustflags.iter().any(|f| f.ends_with("=/cargo")), "{rustflags:?}");
        assert!(rustflags.last().unwrap().ends_with("=/target"), "{rustflags:?}");
        let cflags = &env["CFLAGS_x86_64_unknown_linux_gnu"];
        assert!(cflags.contains(&format!("-ffile-prefix-map={root}=/src")), "{cflags}");
        assert_eq!(env["CARGO_INCREMENTAL"], "0");
        assert_eq!(env["SOURCE_DATE_EPOCH"], "0", "__DATE__/__TIME__ do not record the build time");
        assert_eq!(release.dir.as_deref(), Some(project.path()));
        assert!(!command(project.path(), Profile::Dev).args.contains(&"--release".to_string()));
        // A project folder without the app's sources builds the checkout orch came from.
        assert_eq!(
            command(Path::new("/w"), Profile::Dev).dir.as_deref(),
            Some(Path::new(env!("CARGO_MANIFEST_DIR")))
        );
    }

    #[test]
    fn a_failed_compile_reports_the_command_and_stderr() {
        let rec = Recording::new([Output {
            code: Some(101),
            stdout: String::new(),
            stderr: "error[E0425]: nope".into(),
        }]);
        let err = build(&rec, Path::new("/w"), Profile::Dev).unwrap_err();
        assert!(
            matches!(&err, ImageError::Compile { stderr, .. } if stderr.contains("E0425")),
            "{err}"
        );
    }

    #[test]
    fn the_executable_comes_from_cargo_messages_and_a_dynamic_one_is_refused() {
        let exe = std::env::current_exe().unwrap(); // the test binary: dynamically linked
        let msg = serde_json::json!({"reason": "compiler-artifact", "target": {"name": "app"}, "executable": exe});
        let rec = Recording::new([Output {
            code: Some(0),
            stdout: format!("{{\"reason\":\"build-script-executed\"}}\n{msg}\n"),
            stderr: String::new(),
        }]);
        let err = build(&rec, Path::new("/w"), Profile::Dev).unwrap_err();
        assert!(
            matches!(&err, ImageError::NotStatic { reason, .. } if reason.contains("PT_INTERP")),
            "{err}"
        );
        let text = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(text.path(), "#!/bin/sh\n").unwrap();
        assert!(matches!(check_static(text.path()), Err(ImageError::NotStatic { .. })));
    }
}
