//! The AMI the instances boot, as a concrete id: the stack's pin (`instances.ami`), or the public SSM
//! parameter (`instances.ami_parameter`) read at deploy time through the AWS SDK. The id goes into
//! the program as the `amiId` config key and into the record: an instance refresh with AutoRollback
//! refuses `resolve:ssm:` images, and a rollback needs the AMI the release ran on.
use super::error::DeployError;
use crate::config::Stack;

/// Where the AMI id came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Ami {
    pub id: String,
    /// `pinned in stacks/<env>.yaml` or the SSM parameter's name.
    pub source: String,
}

/// The stack's pin, else the SSM parameter's current value (a read; nothing changes).
pub(crate) async fn resolve(ssm: &aws_sdk_ssm::Client, stack: &Stack) -> Result<Ami, DeployError> {
    if let Some(id) = &stack.instances.ami {
        return Ok(Ami { id: id.clone(), source: format!("pinned in stacks/{}.yaml", stack.name) });
    }
    let name = &stack.instances.ami_parameter;
    let out = ssm
        .get_parameter()
        .name(name)
        .send()
        .await
        .map_err(DeployError::aws(format!("reading the AMI parameter {name}")))?;
    let id = out.parameter().and_then(|p| p.value()).unwrap_or_default().to_string();
    if !crate::config::is_ami_id(&id) {
        return Err(DeployError::step(
            "AMI",
            format!("SSM parameter {name} holds `{id}`, not an AMI id"),
        ));
    }
    Ok(Ami { id, source: name.clone() })
}
