//! `orch verify [URL]`: the acceptance suite against a deployed URL (exit 0 pass, 1 fail). Without
//! a URL it tests the environment's own: for the local target, the running tier (trusting its CA);
//! for an AWS one, the URLs of its last recorded deployment, with the options `orch up` verifies with.
use super::Ctx;
use crate::cli::VerifyArgs;
use crate::config::Target;
use crate::error::{OrchError, Outcome};
use crate::verify::{self, Options};

pub(crate) async fn run(ctx: &Ctx<'_>, args: VerifyArgs) -> Result<Outcome, OrchError> {
    let marker =
        ctx.project().ok().and_then(|p| verify::marker_from_page(&p.pages_dir().join("404.html")));
    let mut opts = Options {
        requests: args.requests,
        insecure: args.insecure,
        not_found_marker: marker,
        ..Options::default()
    };
    let url = match args.url {
        Some(url) => url,
        None => {
            let stack = ctx.stack()?;
            if stack.target != Target::Local {
                let (url, http_url) = crate::deploy::deployed_urls(&stack).await?;
                let pages = ctx.project().ok().map(|p| p.pages_dir());
                opts = verify::options_for_aws(
                    pages.as_deref(),
                    stack.domain.is_some(),
                    http_url,
                    args.requests,
                    ctx.settings().verify_ca.as_deref(),
                )
                .map_err(OrchError::Usage)?;
                opts.insecure |= args.insecure;
                return report(ctx, &url, &opts, args.json).await;
            }
            let state = crate::local::running_state(&ctx.project()?, &stack)
                .ok_or(crate::local::LocalError::NotRunning)?;
            opts.http_url = Some(state.http_url.clone());
            opts.ca_pem = std::fs::read(&state.ca).ok();
            state.https_url
        }
    };
    if !url.starts_with("https://") && !url.starts_with("http://") {
        return Err(OrchError::Usage(format!("`{url}` is not an http:// or https:// URL")));
    }
    report(ctx, &url, &opts, args.json).await
}

async fn report(
    ctx: &Ctx<'_>,
    url: &str,
    opts: &Options,
    json: bool,
) -> Result<Outcome, OrchError> {
    let spinner = ctx.printer.spinner(format!("verifying {url}"));
    let report = verify::run_suite(url, opts).await;
    spinner.finish_and_clear();
    if json {
        ctx.printer.json(&report)?;
    } else {
        ctx.printer.data(&report.table());
    }
    Ok(Outcome::finding_if(!report.passed()))
}
