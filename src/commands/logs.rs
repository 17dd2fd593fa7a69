//! `orch logs`: the instances' logs or the access log, local or AWS, merged in time order.
use super::Ctx;
use crate::cli::LogsArgs;
use crate::config::Target;
use crate::error::{OrchError, Outcome};
use crate::logs::{self, Filter, Sink};

pub(crate) async fn run(ctx: &Ctx<'_>, args: LogsArgs) -> Result<Outcome, OrchError> {
    let stack = ctx.stack()?;
    let since =
        args.since.as_deref().map(|s| logs::parse_since(s, chrono::Utc::now())).transpose()?;
    let filter = Filter::new(since, args.instance.clone(), args.zone, &stack.zones)?;
    let sink = Sink::new(ctx.printer, args.json, stack.zones.clone());
    match stack.target {
        Target::Local => {
            let dir = crate::local::paths(&ctx.project()?, &stack).dir;
            if !dir.join("instances").is_dir() {
                ctx.printer.warn(&format!(
                    "no instance has run here yet: {} holds no logs",
                    dir.display()
                ));
            }
            logs::local::show(&dir, args.access, &filter, args.follow, &sink).await?;
        }
        Target::Aws => {
            let sdk = crate::aws::sdk_config(&stack.region).await;
            let group = logs::aws::Group::new(&sdk, &stack.name, args.instance.as_deref());
            logs::aws::show(group, &filter, args.access, args.follow, &sink).await?;
        }
    }
    Ok(Outcome::Ok)
}
