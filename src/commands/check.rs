//! `orch check`: render and check the program offline (exit 0 clean, 1 findings, 2 error).
use super::Ctx;
use crate::check;
use crate::cli::ReportArgs;
use crate::error::{OrchError, Outcome};

pub(crate) async fn run(ctx: &Ctx<'_>, args: ReportArgs) -> Result<Outcome, OrchError> {
    let project = ctx.project()?;
    let stack = ctx.stack()?;
    let report = check::check(&project, &stack)?;
    if args.json {
        ctx.printer.json(&report)?;
    } else {
        for f in &report.findings {
            ctx.printer.data(&format!("{}\t{}\t{}", f.rule, f.path, f.explained()));
        }
    }
    let summary = match report.findings.len() {
        0 => format!(
            "{}: {} resources, aws-native {}: clean",
            report.env, report.resources, report.provider_version
        ),
        n => format!("{}: {n} finding(s) in {} resources", report.env, report.resources),
    };
    ctx.printer.progress(&summary);
    Ok(Outcome::finding_if(!report.findings.is_empty()))
}
