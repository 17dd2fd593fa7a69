//! The local tier's logs, read from its state directory (`src/local/state.rs` names the files):
//! every instance's output `instances/<id>.log`, the logs of terminated instances, which the
//! launcher moves to `instances/retired/` (`src/local/group/launcher.rs`), and the load balancer's
//! `access.log` with its rotated files `access.log.<n>` (`src/local/lb/accesslog.rs`), read oldest
//! first. Each file is read from where the last read stopped, so `--follow` is the same
//! read every [`POLL`]: a new instance's file is picked up when it appears, and a file moved to
//! `retired/` is read on from the same offset there; an access-log file is known by its inode, so
//! one rotated away (`access.log` → `access.log.1`) is read on from the same offset too. An instance's zone comes from the running
//! supervisor's `state.json`, or from the "identity resolved" line the app writes when it starts.
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::merge::{self, Filter, Holdback, Line};
use super::{Interrupt, LogsError, Sink};
use crate::local::state::{self, Paths};

/// How often `--follow` looks for new lines and new files.
pub const POLL: Duration = Duration::from_millis(250);
/// How long `--follow` holds a line back so that lines of all files come out in time order.
const HOLD_MS: i64 = 500;
/// How much of an instance's log is searched for the line that announces its zone.
const HEAD: u64 = 16 * 1024;

/// One file being read.
#[derive(Debug)]
struct Tail {
    path: PathBuf,
    /// The file's inode, when it is known by it (the access log): another file at `path` is not it.
    ino: Option<u64>,
    offset: u64,
    /// The time of the last line read (a plain-text line gets it).
    last: Option<DateTime<Utc>>,
}

/// The files of one tier, and how far each is read.
pub struct Reader {
    paths: Paths,
    access: bool,
    tails: BTreeMap<String, Tail>,
    zones: BTreeMap<String, String>,
}

impl Reader {
    /// The instances' logs, or with `access` the load balancer's access log, of the tier at `dir`.
    pub fn new(dir: &Path, access: bool) -> Self {
        Reader {
            paths: Paths::new(dir.into()),
            access,
            tails: BTreeMap::new(),
            zones: BTreeMap::new(),
        }
    }

    /// The files to read now, in order, by key (the instance id, or `access:<inode>`), with the
    /// inode of those known by it.
    fn files(&self) -> Vec<(String, PathBuf, Option<u64>)> {
        if self.access {
            return access_files(&self.paths.access_log());
        }
        let live = self.paths.instances();
        // Retired first, so that a file present in both places is read where it is live.
        [live.join("retired"), live]
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flat_map(|entries| entries.filter_map(Result::ok))
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .filter_map(|p| Some((p.file_stem()?.to_str()?.to_string(), p)))
            .collect::<BTreeMap<String, PathBuf>>()
            .into_iter()
            .map(|(key, path)| (key, path, None))
            .collect()
    }

    /// Every complete line written since the last read.
    pub fn read(&mut self) -> Result<Vec<Line>, LogsError> {
        let files = self.files();
        self.tails.retain(|k, _| files.iter().any(|(f, ..)| f == k));
        let mut lines = vec![];
        for (key, path, ino) in files {
            let tail = self.tails.entry(key.clone()).or_insert(Tail {
                path: path.clone(),
                ino,
                offset: 0,
                last: None,
            });
            tail.path = path;
            let Some(text) = read_on(tail)? else { continue };
            for raw in text.lines().filter(|l| !l.trim().is_empty()) {
                let line = if self.access {
                    match Line::from_access(raw) {
                        Some(l) => l,
                        None => continue,
                    }
                } else {
                    let at = tail.last.unwrap_or_else(Utc::now);
                    Line::from_instance(raw, Some(key.as_str()), at)
                };
                tail.last = Some(line.time);
                lines.push(line);
            }
        }
        merge::learn_zones(&lines, &mut self.zones);
        Ok(lines)
    }

    /// Give `lines` their zones: from the live instances, or the zone each instance announced.
    pub fn zone(&mut self, lines: &mut [Line]) {
        if let Some(s) = state::read(&self.paths) {
            self.zones.extend(s.instances.into_iter().map(|i| (i.id, i.zone)));
        }
        for l in lines.iter() {
            let Some(id) = l.instance.as_ref().filter(|i| !self.zones.contains_key(*i)) else {
                continue;
            };
            let dir = self.paths.instances();
            let found =
                [dir.join(format!("{id}.log")), dir.join("retired").join(format!("{id}.log"))]
                    .iter()
                    .find_map(|p| announced_zone(p));
            if let Some(zone) = found {
                self.zones.insert(id.clone(), zone);
            }
        }
        merge::fill_zones(lines, &self.zones);
    }
}

/// The access log's files, oldest first: `access.log.<n>` from the highest `n` down, then
/// `access.log`; each keyed by its inode.
fn access_files(live: &Path) -> Vec<(String, PathBuf, Option<u64>)> {
    let mut rotated: Vec<(usize, PathBuf)> = (1..)
        .map(|n| (n, crate::local::lb::accesslog::rotated(live, n)))
        .take_while(|(_, p)| p.exists())
        .collect();
    rotated.reverse();
    rotated
        .into_iter()
        .map(|(_, p)| p)
        .chain([live.to_path_buf()])
        .filter_map(|p| {
            let ino = std::fs::metadata(&p).ok()?.ino();
            Some((format!("access:{ino}"), p, Some(ino)))
        })
        .collect()
}

/// The new complete lines of `tail`'s file (`None` when it is gone, or another file took its
/// place, meanwhile); a file shorter than what was read is read again from the start.
fn read_on(tail: &mut Tail) -> Result<Option<String>, LogsError> {
    let io = |source| LogsError::Io { what: format!("reading {}", tail.path.display()), source };
    let mut file = match std::fs::File::open(&tail.path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let meta = file.metadata().map_err(io)?;
    if tail.ino.is_some_and(|ino| ino != meta.ino()) {
        return Ok(None);
    }
    let len = meta.len();
    if len < tail.offset {
        tail.offset = 0;
    }
    file.seek(SeekFrom::Start(tail.offset)).map_err(io)?;
    let mut bytes = vec![];
    file.take(len - tail.offset).read_to_end(&mut bytes).map_err(io)?;
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    bytes.truncate(complete);
    tail.offset += complete as u64;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// The zone an instance's log announces near its start, if it does.
fn announced_zone(path: &Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    std::io::BufReader::new(file.take(HEAD)).lines().map_while(Result::ok).find_map(|raw| {
        Line::from_instance(&raw, None, Utc::now()).announced_zone().map(str::to_string)
    })
}

/// Print the tier's lines that pass `filter`, in time order; with `follow`, keep printing new
/// lines until Ctrl-C.
pub async fn show(
    dir: &Path,
    access: bool,
    filter: &Filter,
    follow: bool,
    sink: &Sink<'_>,
) -> Result<(), LogsError> {
    let mut reader = Reader::new(dir, access);
    let mut lines = reader.read()?;
    reader.zone(&mut lines);
    if !follow {
        merge::merge(vec![lines], filter).iter().for_each(|l| sink.emit(l));
        return Ok(());
    }
    let mut interrupt = Interrupt::new()?;
    let hold = chrono::Duration::milliseconds(HOLD_MS);
    let mut held = Holdback::default();
    held.push(lines);
    loop {
        let mut ready = held.ready(Utc::now(), hold);
        reader.zone(&mut ready);
        ready.iter().filter(|l| filter.keeps(l)).for_each(|l| sink.emit(l));
        if sink.closed() {
            return Ok(());
        }
        if interrupt.within(POLL).await {
            let mut rest = held.drain();
            reader.zone(&mut rest);
            rest.iter().filter(|l| filter.keeps(l)).for_each(|l| sink.emit(l));
            return Ok(());
        }
        held.push(reader.read()?);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(ts: &str, message: &str) -> String {
        format!("{{\"timestamp\":\"{ts}\",\"level\":\"INFO\",\"message\":\"{message}\"}}\n")
    }

    #[test]
    fn reads_on_across_retirement_and_knows_zones() {
        let dir = tempfile::tempdir().unwrap();
        let inst = dir.path().join("instances");
        std::fs::create_dir_all(inst.join("retired")).unwrap();
        let hello = r#"{"timestamp":"2026-11-30T12:00:00Z","level":"INFO","message":"identity resolved","availability_zone":"local-b"}"#;
        std::fs::write(
            inst.join("i-1.log"),
            format!("{hello}\n{}partial", app("2026-11-30T12:00:01Z", "one")),
        )
        .unwrap();
        let mut r = Reader::new(dir.path(), false);
        let mut lines = r.read().unwrap();
        r.zone(&mut lines);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[1].zone.as_deref(), Some("local-b"));
        // The instance ends: its file moves to retired/ with the rest of the line written.
        let mut text = std::fs::read_to_string(inst.join("i-1.log")).unwrap();
        text.push_str(" end\n");
        std::fs::write(inst.join("retired/i-1.log"), text).unwrap();
        std::fs::remove_file(inst.join("i-1.log")).unwrap();
        let mut more = r.read().unwrap();
        r.zone(&mut more);
        assert_eq!(more.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(), ["partial end"]);
        assert_eq!(more[0].time, lines[1].time, "a plain line takes the time of the line before");
        assert_eq!(more[0].zone.as_deref(), Some("local-b"));
        assert!(r.read().unwrap().is_empty());
    }

    #[test]
    fn access_mode_reads_only_the_access_log() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("instances")).unwrap();
        std::fs::write(dir.path().join("instances/i-1.log"), app("2026-11-30T12:00:00Z", "x"))
            .unwrap();
        std::fs::write(dir.path().join("access.log"), access("/p")).unwrap();
        let lines = Reader::new(dir.path(), true).read().unwrap();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].message.starts_with("GET /p 200"), "{}", lines[0].message);
    }

    fn access(path: &str) -> String {
        format!("{{\"ts\":\"2026-11-30T12:00:00Z\",\"method\":\"GET\",\"path\":\"{path}\",\"status\":200,\"instance\":null,\"ms\":1.0,\"client\":\"127.0.0.1\"}}\n")
    }

    fn paths(lines: &[Line]) -> Vec<String> {
        lines.iter().map(|l| l.fields.as_ref().unwrap()["path"].as_str().unwrap().into()).collect()
    }

    #[test]
    fn rotated_access_logs_are_read_oldest_first_and_across_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("access.log");
        let rotated = |n| crate::local::lb::accesslog::rotated(&live, n);
        std::fs::write(rotated(2), access("/1")).unwrap();
        std::fs::write(rotated(1), access("/2")).unwrap();
        std::fs::write(&live, access("/3")).unwrap();
        let mut r = Reader::new(dir.path(), true);
        // Same timestamp everywhere: the order is the files' (merge keeps it for equal times).
        assert_eq!(paths(&r.read().unwrap()), ["/1", "/2", "/3"]);
        // More is written, then the file rotates (as the writer does) and a new one starts.
        let mut more = access("/3");
        more.push_str(&access("/4"));
        std::fs::write(&live, more).unwrap();
        std::fs::rename(rotated(2), dir.path().join("gone")).unwrap();
        std::fs::rename(rotated(1), rotated(2)).unwrap();
        std::fs::rename(&live, rotated(1)).unwrap();
        std::fs::write(&live, access("/5")).unwrap();
        assert_eq!(paths(&r.read().unwrap()), ["/4", "/5"], "nothing lost, nothing twice");
        assert!(r.read().unwrap().is_empty());
    }
}
