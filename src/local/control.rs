//! The control file (`.orch/<env>/control.json`) through which `orch local zone-down/zone-up` and a
//! converging `orch up` talk to the running supervisor, which reads it every tick. A file rather
//! than a socket: nothing else listens, and the request survives until the supervisor applies it.
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

/// Requests for the supervisor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Control {
    /// Zones taken down by the drill: their instances die and launches there fail.
    #[serde(default)]
    pub zones_down: BTreeSet<String>,
    /// Bumped by each request; the supervisor echoes the last one it applied in `state.json`.
    #[serde(default)]
    pub generation: u64,
    /// Desired capacity override from a converging `up` (re-read from the stack).
    #[serde(default)]
    pub desired: Option<u32>,
    /// A release to roll out, from `up` or `rollback` on a running tier.
    #[serde(default)]
    pub release: Option<ReleaseRequest>,
}

/// A release asked for, with the generation of the request (acted on once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseRequest {
    pub release: super::release::Release,
    /// Who asked (user@host).
    pub by: String,
    /// The source revision of the release.
    #[serde(default)]
    pub revision: String,
    /// The control generation that carried the request.
    pub generation: u64,
    /// Roll out as a canary (None: rolling).
    #[serde(default)]
    pub canary: Option<crate::rollout::canary::CanaryPlan>,
    /// Why it is deployed with `--force`, kept in the release record.
    #[serde(default)]
    pub forced: Option<String>,
}

pub fn read(path: &Path) -> Control {
    std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// Apply `change` to the current requests and write them back (temp + fsync + rename); returns the
/// new generation. Callers that change the tier (`up`, `rollback`) hold the tier's lock.
pub fn update(path: &Path, change: impl FnOnce(&mut Control)) -> std::io::Result<u64> {
    let mut control = read(path);
    change(&mut control);
    control.generation += 1;
    crate::atomic::write(path, &serde_json::to_vec(&control).map_err(std::io::Error::other)?)?;
    Ok(control.generation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_accumulate_and_bump_the_generation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.json");
        assert_eq!(read(&path), Control::default());
        assert_eq!(
            update(&path, |c| {
                c.zones_down.insert("local-a".into());
            })
            .unwrap(),
            1
        );
        assert_eq!(update(&path, |c| c.desired = Some(6)).unwrap(), 2);
        let c = read(&path);
        assert!(c.zones_down.contains("local-a"));
        assert_eq!(c.desired, Some(6));
    }
}
