//! What every operation gets from the command line, as plain values: the project root, the chosen
//! environment, the printer and the `ORCH_*` settings read at start ([`Ctx`]), and the options of
//! the commands that change things ([`UpOptions`], [`DownOptions`]). `commands/` builds them from
//! the parsed arguments; the domain modules below it (`deploy`, `ops`, `local`) take them and
//! never see `cli`.
use crate::config::{self, Stack};
use crate::error::OrchError;
use crate::printer::Printer;
use crate::project::Project;
use crate::settings::Settings;

/// The project, the chosen environment, the printer, and the settings.
pub struct Ctx<'a> {
    root: Option<std::path::PathBuf>,
    pub env: String,
    pub printer: &'a Printer,
    settings: &'a Settings,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(
        root: Option<std::path::PathBuf>,
        env: String,
        printer: &'a Printer,
        settings: &'a Settings,
    ) -> Self {
        Ctx { root, env, printer, settings }
    }
    /// The `ORCH_*` settings, read once at start.
    pub(crate) fn settings(&self) -> &'a Settings {
        self.settings
    }
    /// The project (found from `--root` or the working directory).
    pub fn project(&self) -> Result<Project, OrchError> {
        Project::discover(self.root.as_deref())
    }
    /// The environment's validated stack.
    pub fn stack(&self) -> Result<Stack, OrchError> {
        Ok(config::load(&self.project()?, &self.env)?)
    }
}

/// How `orch up` should go.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpOptions {
    /// Print the plan and change nothing.
    pub dry_run: bool,
    /// With `dry_run`: the plan as JSON.
    pub json: bool,
    /// Confirmed in advance (a protected environment asks otherwise).
    pub yes: bool,
    /// Local: keep the tier running in the background.
    pub detach: bool,
    /// Deploy even when nothing changed.
    pub force: bool,
    /// Remove a stale deploy lock.
    pub force_unlock: bool,
}

/// How `orch down` should go.
#[derive(Debug, Clone, Copy, Default)]
pub struct DownOptions {
    pub dry_run: bool,
    pub yes: bool,
    pub force_unlock: bool,
    /// Tear down a protected environment (deletion protection off, final snapshot).
    pub unprotect: bool,
}
