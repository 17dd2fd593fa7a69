//! A release of the local tier: the program every instance runs (the image's entrypoint, unpacked),
//! its environment (the image's, plus the stack's `instances.env`) and the image digest. Its id is a
//! hash of digest and environment, so a new image or a changed environment is a new release, which
//! the supervisor rolls out instance by instance (see [`crate::local::group::rollout`]). The history of releases
//! (`releases.json`) is what `orch releases --env local` lists.
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// What instances run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// 12 hex digits over digest and environment.
    pub id: String,
    /// The image digest (`sha256:…`), or the hash of a program handed over by `ORCH_APP_BIN`.
    pub digest: String,
    pub program: PathBuf,
    /// Environment of every instance of this release (never secrets: the database URL is not here).
    pub env: Vec<(String, String)>,
}

impl Release {
    pub fn new(digest: &str, program: PathBuf, env: Vec<(String, String)>) -> Self {
        let mut h = Sha256::new();
        h.update(digest.as_bytes());
        for (k, v) in &env {
            h.update([0u8]);
            h.update(k.as_bytes());
            h.update([b'=']);
            h.update(v.as_bytes());
        }
        let id = hex::encode(h.finalize())[..12].to_string();
        Release { id, digest: digest.to_string(), program, env }
    }

    /// What the history keeps of it, once its rollout took `seconds`.
    pub fn ran(self, seconds: f64) -> LocalRun {
        LocalRun { id: self.id, seconds, program: self.program, env: self.env }
    }

    /// The digest, short (`sha256:` and 12 hex digits).
    pub fn short_digest(&self) -> String {
        self.digest.chars().take(19).collect()
    }
}

use crate::release::State;

/// The release the supervisor targets, as `state.json` records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseView {
    pub id: String,
    pub digest: String,
    pub outcome: State,
    /// Why it was rolled back (the failed checks), and the logs to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The control generation that asked for it (0: the release the tier started with).
    pub generation: u64,
    /// Instances replaced so far.
    pub replaced: u32,
    /// The canary step in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<crate::rollout::local::canary::CanaryProgress>,
    /// The canary's judged steps (once the rollout ended).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analysis: Vec<crate::rollout::canary::StepAnalysis>,
}

/// One line of the release history: the record both targets share, with what the local tier ran.
pub type Entry = crate::release::Release<LocalRun>;

/// What the local tier ran a release with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalRun {
    /// The release id ([`Release::id`]).
    pub id: String,
    /// Seconds the rollout took.
    pub seconds: f64,
    /// The program, to roll back to without a build.
    pub program: PathBuf,
    pub env: Vec<(String, String)>,
}

impl crate::release::Ran for LocalRun {
    fn runs(&self, _digest: &str) -> String {
        self.id.clone()
    }
}

/// The history at `path`, oldest first: empty when there is no file yet; a file that cannot be
/// read or does not parse is an error naming it (and is never overwritten: [`record`] refuses).
pub fn history(path: &Path) -> Result<Vec<Entry>, super::LocalError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(super::LocalError::io(path, e)),
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| super::LocalError::History { path: path.to_path_buf(), why: e.to_string() })
}

/// The newest release of the history at `path` that was deployed (not rolled back or rolling).
pub fn last_deployed(path: &Path) -> Result<Option<Entry>, super::LocalError> {
    Ok(history(path)?.into_iter().rev().find(|e| e.state == State::Deployed))
}

/// Append `entry` to the history at `path`, keeping the last 50; written temp + fsync + rename
/// ([`crate::atomic::write`]). A history that does not parse is left as it is: an error.
pub fn record(path: &Path, entry: Entry) -> Result<(), super::LocalError> {
    let mut all = history(path)?;
    all.push(entry);
    let skip = all.len().saturating_sub(50);
    let body = serde_json::to_vec_pretty(&all[skip..])
        .map_err(|e| super::LocalError::io(path, std::io::Error::other(e)))?;
    crate::atomic::write(path, &body).map_err(|e| super::LocalError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_follows_digest_and_environment() {
        let a = Release::new("sha256:aa", "/p".into(), vec![("A".into(), "1".into())]);
        assert_eq!(a.id.len(), 12);
        assert_eq!(a, Release::new("sha256:aa", "/p".into(), vec![("A".into(), "1".into())]));
        assert_ne!(a.id, Release::new("sha256:bb", "/p".into(), a.env.clone()).id);
        assert_ne!(a.id, Release::new("sha256:aa", "/p".into(), vec![("A".into(), "2".into())]).id);
    }

    #[test]
    fn history_appends_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("releases.json");
        assert!(history(&path).unwrap().is_empty());
        let e = Entry {
            time: chrono::DateTime::UNIX_EPOCH,
            digest: "sha256:1".into(),
            state: State::Deployed,
            note: None,
            by: Some(crate::host::who()),
            revision: "abc".into(),
            canary: vec![],
            forced: None,
            run: LocalRun { id: "abc".into(), seconds: 1.0, program: "/p".into(), env: vec![] },
        };
        record(&path, e.clone()).unwrap();
        record(&path, Entry { state: State::RolledBack, ..e.clone() }).unwrap();
        let all = history(&path).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].state, State::RolledBack);
        // A history written by an older orch (`digest`, `outcome`, `reason`) still reads.
        let old = dir.path().join("old.json");
        std::fs::write(&old, br#"[{"time":"2026-01-01T00:00:00Z","id":"abc","digest":"sha256:1","outcome":"rolled_back","reason":"checks","by":"me@h","revision":"r","seconds":1.0,"program":"/p","env":[]}]"#).unwrap();
        let read = history(&old).unwrap();
        assert_eq!(
            (read[0].state, read[0].note.as_deref(), read[0].run.id.as_str()),
            (State::RolledBack, Some("checks"), "abc")
        );
        // A history that does not parse is an error naming it, and is never overwritten.
        std::fs::write(&path, b"[{\"time\": oops").unwrap();
        let err = history(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(record(&path, e).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"[{\"time\": oops");
    }
}
