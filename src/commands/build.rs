//! `orch build`: the app's OCI image into build/<env>/image/, pushed with `--push`.
//! Prints the manifest digest (and, after a push, the pinned reference) on stdout.
use super::Ctx;
use crate::cli::BuildArgs;
use crate::error::{OrchError, Outcome};
use crate::image;
use crate::runner::Duct;

pub async fn run(ctx: &Ctx<'_>, args: BuildArgs) -> Result<Outcome, OrchError> {
    let project = ctx.project()?;
    let stack = ctx.stack()?;
    let built = image::build(&project, &stack, &Duct, ctx.printer)?;
    ctx.printer.progress(&format!(
        "image {} ({} layers, {:.1} MB compressed) assembled in {:.2}s into {}",
        built.tag,
        built.layers.len(),
        built.compressed_bytes() as f64 / 1e6,
        built.assembly_seconds,
        built.layout_dir.display()
    ));
    ctx.printer.data(&built.digest);
    if args.push {
        let report = image::publish(&project, &stack, ctx.printer).await?;
        ctx.printer.progress(&format!(
            "pushed {}:{} — {} bytes in {} blobs uploaded, {} blobs already there",
            report.repository,
            report.tag,
            report.bytes_uploaded,
            report.blobs_uploaded,
            report.blobs_skipped
        ));
        ctx.printer.data(&report.reference);
    }
    Ok(Outcome::Ok)
}
