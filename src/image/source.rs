//! Where the image comes from: the git revision and commit time that label it, and the tag it is
//! pushed under. The commit time (not the clock) dates the image, so rebuilds are byte-identical.
use oci_spec::image::Digest;
use std::path::Path;

use crate::runner::{Cmd, Runner};

/// The source revision of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Full commit hash, or `None` outside a git checkout.
    pub revision: Option<String>,
    /// The first 12 hex digits of the commit (fixed length: git's own abbreviation grows with
    /// the repository and differs between a shallow CI clone and a full one).
    pub short: Option<String>,
    /// Tracked files differ from the commit.
    pub dirty: bool,
    /// Commit time (the epoch outside git).
    pub created: crate::clock::Time,
}

impl Source {
    /// Outside git: no revision, dated at the epoch.
    pub fn unknown() -> Self {
        Source { revision: None, short: None, dirty: true, created: chrono::DateTime::UNIX_EPOCH }
    }

    /// The commit time as the image's `created` and its label say it: RFC 3339, UTC, seconds.
    pub fn created_rfc3339(&self) -> String {
        crate::clock::show(&self.created)
    }

    /// The commit time as seconds since the epoch: the layers' mtime.
    pub fn epoch(&self) -> u64 {
        u64::try_from(self.created.timestamp()).unwrap_or(0)
    }

    /// What `org.opencontainers.image.revision` says.
    pub fn label(&self) -> String {
        match (&self.revision, self.dirty) {
            (Some(rev), false) => rev.clone(),
            (Some(rev), true) => format!("{rev}-dirty"),
            (None, _) => "unknown".into(),
        }
    }

    /// The tag to push under: always `<12 hex of the revision>-<12 hex of the manifest digest>`
    /// (`…-dirty-…` with uncommitted changes, `build-<12 hex>` outside git). Two builds of one
    /// revision into different digests get different tags, so an immutable tag never has to name
    /// two images; deploys refer to the digest anyway.
    pub fn tag(&self, manifest_digest: &Digest) -> String {
        let hex = digest_hex12(manifest_digest);
        match (&self.short, self.dirty) {
            (Some(short), false) => format!("{short}-{hex}"),
            (Some(short), true) => format!("{short}-dirty-{hex}"),
            (None, _) => format!("build-{hex}"),
        }
    }
}

/// The first 12 hex digits of a digest.
pub fn digest_hex12(digest: &Digest) -> String {
    digest.digest().chars().take(12).collect()
}

/// Does `tag` carry `digest` (end with its 12 hex digits), as every tag orch writes does?
pub fn tag_carries(tag: &str, digest: &Digest) -> bool {
    let hex = digest_hex12(digest);
    hex.len() == 12 && tag.ends_with(&format!("-{hex}"))
}

/// Ask git about the checkout at `root`; outside git this is [`Source::unknown`].
pub fn describe(runner: &dyn Runner, root: &Path) -> Source {
    let git = |args: &[&str]| {
        let mut all = vec!["-C".to_string(), root.display().to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        runner.run(&Cmd::new("git", all)).ok().filter(|o| o.success()).map(|o| o.stdout)
    };
    let Some(log) = git(&["log", "-1", "--format=%H%n%cI"]) else { return Source::unknown() };
    let mut lines = log.lines();
    let (Some(rev), Some(created)) = (lines.next(), lines.next()) else {
        return Source::unknown();
    };
    let rev = rev.trim();
    let short: String = rev.chars().take(12).collect();
    let Ok(time) = chrono::DateTime::parse_from_rfc3339(created.trim()) else {
        return Source::unknown();
    };
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .is_none_or(|s| !s.trim().is_empty());
    Source {
        revision: Some(rev.to_owned()),
        short: Some(short),
        dirty,
        created: time.with_timezone(&chrono::Utc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A digest whose hex starts 0123456789ab.
    fn d() -> Digest {
        format!("sha256:0123456789abcdef{}", "0".repeat(48)).parse().unwrap()
    }
    use crate::runner::{Output, Recording};

    fn ok(stdout: &str) -> Output {
        Output { code: Some(0), stdout: stdout.into(), stderr: String::new() }
    }

    #[test]
    fn clean_checkout_is_tagged_with_revision_and_digest_and_dated_by_the_commit() {
        let rec = Recording::new([ok("abcdef0123456789\n2024-05-01T12:00:00+02:00\n"), ok("")]);
        let src = describe(&rec, Path::new("/p"));
        assert_eq!(src.created_rfc3339(), "2024-05-01T10:00:00Z");
        assert_eq!(src.epoch(), 1_714_557_600);
        assert_eq!(src.tag(&d()), "abcdef012345-0123456789ab");
        assert!(tag_carries(&src.tag(&d()), &d()));
        assert!(!tag_carries("abcdef012345", &d()));
        assert_eq!(src.label(), "abcdef0123456789");
        assert_eq!(rec.calls()[0].display(), "git -C /p log -1 --format=%H%n%cI");
    }

    #[test]
    fn dirty_checkout_and_no_git_get_digest_qualified_tags() {
        let rec =
            Recording::new([ok("abcdef0123456789\n2024-05-01T12:00:00Z\n"), ok(" M src/x.rs\n")]);
        let src = describe(&rec, Path::new("/p"));
        assert_eq!(src.tag(&d()), "abcdef012345-dirty-0123456789ab");
        assert_eq!(src.label(), "abcdef0123456789-dirty");
        let none = describe(
            &Recording::new([Output { code: Some(128), ..Default::default() }]),
            Path::new("/p"),
        );
        assert_eq!(none, Source::unknown());
        assert_eq!(none.tag(&d()), "build-0123456789ab");
    }
}
