//! `orch build`: the app's OCI image into build/<env>/image/, pushed with `--push`.
//! Prints the manifest digest (and, after a push, the pinned reference) on stdout.
//! `--verify DIGEST` rebuilds and compares instead (exit 0 same, 1 different).
use super::Ctx;
use crate::cli::BuildArgs;
use crate::error::{OrchError, Outcome};
use crate::image;
use crate::runner::Duct;

pub(crate) async fn run(ctx: &Ctx<'_>, args: BuildArgs) -> Result<Outcome, OrchError> {
    let project = ctx.project()?;
    let stack = ctx.stack()?;
    if let Some(expected) = &args.verify {
        let verdict =
            image::verify::verify(&project, &stack, ctx.printer, expected, ctx.settings()).await?;
        for line in report(&verdict) {
            ctx.printer.data(&line);
        }
        return Ok(Outcome::finding_if(!verdict.same()));
    }
    let built = image::build(&project, &stack, &Duct, ctx.printer, ctx.settings())?;
    ctx.printer.progress(&format!(
        "image {} ({} layers, {:.1} MB compressed) assembled in {:.2}s into {}",
        built.tag,
        built.layers.len(),
        built.compressed_bytes() as f64 / 1e6,
        built.assembly_seconds,
        built.layout_dir.display()
    ));
    ctx.printer.data(built.digest.as_ref());
    if args.push {
        let report = image::publish(&project, &stack, ctx.printer, ctx.settings()).await?;
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

/// The verification report, one line each.
fn report(v: &image::verify::Verdict) -> Vec<String> {
    let short = |d: &str| d.trim_start_matches("sha256:").chars().take(12).collect::<String>();
    if v.same() {
        return vec![format!(
            "same: this checkout rebuilds {} ({} layers, {})",
            v.expected,
            v.rebuilt.layers.len(),
            v.rebuilt.labels.get(image::provenance::TOOLCHAIN).map_or("", String::as_str)
        )];
    }
    let mut lines = vec![format!(
        "differs: this checkout rebuilds {}, not {} (rebuild in {})",
        v.rebuilt.digest,
        v.expected,
        v.rebuilt.layout_dir.display()
    )];
    if let Some(why) = &v.unreadable {
        lines.push(format!("  cannot list what differs: {why}"));
    }
    let side = |s: &Option<(String, u64)>| {
        s.as_ref().map_or_else(|| "-".to_string(), |(d, n)| format!("{} ({n} bytes)", short(d)))
    };
    for row in &v.layers {
        let verdict = if row.same() { "same   " } else { "DIFFERS" };
        lines.push(format!(
            "  layer {:<5} {verdict} rebuilt {} / expected {}",
            row.name,
            side(&row.ours),
            side(&row.theirs)
        ));
    }
    for (key, ours, theirs) in &v.labels {
        let show = |s: &Option<String>| s.clone().unwrap_or_else(|| "(none)".into());
        lines.push(format!(
            "  label {key} DIFFERS rebuilt {} / expected {}",
            show(ours),
            show(theirs)
        ));
    }
    if !v.layers.is_empty() && v.layers.iter().all(|r| r.same()) && v.labels.is_empty() {
        lines.push("  layers and labels are the same: the rest of the config differs".into());
    }
    lines
}
