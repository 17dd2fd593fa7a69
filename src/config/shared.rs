//! Stacks that share an image repository. Each `orch up` of an AWS stack rewrites the repository's
//! lifecycle policy with its own `image.keep`, so two stacks in one region pushing to one repository
//! with different counts would keep rewriting each other's policy: a configuration error naming
//! both files. (Release images are protected by their tags whatever the count:
//! `crate::image::retention`.)
use super::{load_str, ConfigError, Problem, Stack, Target};
use crate::project::Project;

/// The first other AWS stack of `project` on the same repository, registry and region as `stack`
/// whose `image.keep` differs. Stacks that do not parse are judged when they are deployed.
pub fn check_shared_repository(project: &Project, stack: &Stack) -> Result<(), ConfigError> {
    if stack.target != Target::Aws {
        return Ok(());
    }
    for env in project.envs().into_iter().filter(|e| *e != stack.name) {
        let path = project.stack_file(&env);
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let Ok(other) = load_str(&text, &env, &path) else { continue };
        let same = other.target == Target::Aws
            && other.region == stack.region
            && other.image.repository == stack.image.repository
            && other.image.registry == stack.image.registry;
        if same && other.image.keep != stack.image.keep {
            let mine = project.stack_file(&stack.name);
            return Err(ConfigError::Invalid {
                problems: vec![Problem {
                    key: "image.keep".into(),
                    line: std::fs::read_to_string(&mine)
                        .ok()
                        .and_then(|t| super::locate(&t, "image.keep")),
                    message: format!(
                        "{} keeps {} images of repository `{}` in {}, {} keeps {}: stacks sharing a repository must keep the same count (each `orch up` rewrites the lifecycle policy), or give each its own `image.repository`",
                        mine.display(),
                        stack.image.keep,
                        stack.image.repository,
                        stack.region,
                        path.display(),
                        other.image.keep
                    ),
                }],
                path: mine,
            });
        }
    }
    Ok(())
}
