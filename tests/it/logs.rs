//! `orch logs`: against a running local tier (merged instance logs of both zones, filters, the
//! access log, `--follow` across an instance replacement), and against moto's CloudWatch Logs.
use std::collections::BTreeSet;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{self, Scratch, Tier};

/// `orch logs` with `args` through `cmd`; the JSON lines it printed (it must exit 0).
fn lines(mut cmd: assert_cmd::Command, args: &[&str]) -> Vec<Value> {
    let out = cmd.arg("logs").args(args).arg("--json").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "logs {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

fn field<'a>(lines: &'a [Value], key: &str) -> BTreeSet<&'a str> {
    lines.iter().filter_map(|l| l[key].as_str()).collect()
}

fn in_time_order(lines: &[Value]) -> bool {
    lines.windows(2).all(|w| w[0]["time"].as_str() <= w[1]["time"].as_str())
}

/// A running `orch logs --follow --json`; its lines arrive on a channel. Dropping it kills it.
struct Follow {
    child: Child,
    rx: mpsc::Receiver<Value>,
}

impl Follow {
    /// `orch logs --follow --json ARGS`, its stdout piped.
    fn spawn(root: &std::path::Path, envs: &[(String, String)], args: &[&str]) -> Child {
        Command::new(assert_cmd::cargo::cargo_bin("orch"))
            .env_remove("ORCH_ENV")
            .env("ORCH_ROOT", root)
            .env("NO_COLOR", "1")
            .envs(envs.iter().cloned())
            .args(["logs", "--follow", "--json"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap()
    }

    fn start(root: &std::path::Path, envs: &[(String, String)], args: &[&str]) -> Follow {
        let mut child = Follow::spawn(root, envs, args);
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(serde_json::from_str(&line).unwrap_or(Value::String(line))).is_err() {
                    return;
                }
            }
        });
        Follow { child, rx }
    }

    /// The first line from now on for which `cond` holds; fails after `within`.
    fn wait(&self, within: Duration, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) if cond(&v) => return v,
                Ok(_) => {}
                Err(e) => panic!("--follow: {what}: not within {within:?} ({e})"),
            }
        }
    }

    /// Ctrl-C: it must end by itself, with exit 0.
    fn interrupt(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "--follow ended with {status} on Ctrl-C");
                return;
            }
            assert!(Instant::now() < deadline, "--follow did not stop on Ctrl-C");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_logs_merge_both_zones_filter_and_follow_a_replacement() {
    let tier = Tier::scratch();
    tier.up();
    let client = tier.client();
    for k in 0..8 {
        let resp = client.get(tier.https(&format!("/logs-probe-{k}"))).send().await.unwrap();
        assert_eq!(resp.status(), 404);
    }
    let logs = |args: &[&str]| {
        let mut cmd = tier.orch();
        cmd.args(["--env", "local"]);
        lines(cmd, args)
    };

    // The access log names every request (it is written every 20 ms: wait for the last one).
    let start = Instant::now();
    let access = loop {
        let access = logs(&["--access"]);
        if access.iter().any(|l| l["fields"]["path"] == "/logs-probe-7") {
            break access;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no probe in the access log: {access:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let paths = field(&access, "message");
    for k in 0..8 {
        assert!(
            paths.iter().any(|m| m.starts_with(&format!("GET /logs-probe-{k} 404 "))),
            "request {k} not in {paths:?}"
        );
    }
    assert!(access.iter().all(|l| l["source"] == "access"));
    assert!(in_time_order(&access));
    let answered: Vec<&Value> = access.iter().filter(|l| l["instance"].is_string()).collect();
    assert!(answered.iter().all(|l| l["zone"].is_string()), "{answered:?}");

    // Every instance's lines, both zones, in time order, each with instance and zone.
    let all = logs(&["--since", "3h"]);
    assert_eq!(field(&all, "zone"), BTreeSet::from(["local-a", "local-b"]));
    assert!(field(&all, "instance").len() >= 4, "{:?}", field(&all, "instance"));
    assert!(in_time_order(&all));
    assert!(all.iter().all(|l| l["source"] == "instance" && l["zone"].is_string()));

    // --zone and --instance.
    let a = logs(&["--zone", "local-a"]);
    assert!(!a.is_empty() && a.iter().all(|l| l["zone"] == "local-a"));
    let one = all[0]["instance"].as_str().unwrap();
    let mine = logs(&["--instance", one]);
    assert!(!mine.is_empty() && mine.iter().all(|l| l["instance"] == one));
    // --since an RFC 3339 time (a duration is the same cut, counted back from now).
    let cut = all[all.len() / 2]["time"].as_str().unwrap();
    let late = logs(&["--since", cut]);
    assert!(all[0]["time"].as_str().unwrap() < cut, "{cut}");
    assert!(!late.is_empty() && late.iter().all(|l| l["time"].as_str().unwrap() >= cut));
    assert!(logs(&["--since", "1h"]).len() >= all.len());

    // Bad input: exit 2, saying what is wrong.
    for (args, says) in [(["--since", "10x"], "10x"), (["--zone", "local-z"], "local-a, local-b")] {
        let out = tier.orch().args(["logs", "--env", "local"]).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(says), "{args:?}");
    }

    // --follow: a line written after it started, then the lines of a replacement instance.
    let follow = Follow::start(tier.scratch.path(), &[], &["--env", "local"]);
    follow.wait(Duration::from_secs(10), "the existing lines", |_| true);
    client.get(tier.https("/logs-probe-after")).send().await.unwrap();
    follow.wait(Duration::from_secs(10), "a request after the start", |l| {
        l["fields"]["path"] == "/logs-probe-after"
    });
    let (_, status) = tier.status();
    let before: BTreeSet<String> = status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    let victim = &status["instances"][0];
    let pid = nix::unistd::Pid::from_raw(victim["pid"].as_u64().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let new = follow.wait(Duration::from_secs(30), "a line of the replacement", |l| {
        l["instance"].as_str().is_some_and(|i| !before.contains(i)) && l["zone"].is_string()
    });
    eprintln!("replacement {} in {}", new["instance"], new["zone"]);
    follow.interrupt();

    // The killed instance's log, retired, is still read.
    let victim = victim["id"].as_str().unwrap();
    let start = Instant::now();
    while !tier.scratch.path().join(format!(".orch/local/instances/retired/{victim}.log")).exists()
    {
        assert!(start.elapsed() < Duration::from_secs(10), "{victim}'s log was not retired");
        std::thread::sleep(Duration::from_millis(50));
    }
    let retired = logs(&["--instance", victim]);
    assert!(
        !retired.is_empty() && retired.iter().all(|l| l["zone"] == *victim_zone(&status, victim))
    );
}

fn victim_zone<'a>(status: &'a Value, id: &str) -> &'a Value {
    let all = status["instances"].as_array().unwrap();
    &all.iter().find(|i| i["id"] == id).unwrap()["zone"]
}

/// The environment a run against moto gets.
fn moto_envs(moto: &str) -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ENDPOINT_URL", moto),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn app_line(at: i64, message: &str, extra: &str) -> aws_sdk_cloudwatchlogs::types::InputLogEvent {
    let ts = chrono::DateTime::from_timestamp_millis(at).unwrap().to_rfc3339();
    aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
        .timestamp(at)
        .message(format!(r#"{{"timestamp":"{ts}","level":"INFO","message":"{message}"{extra}}}"#))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_logs_read_the_log_group_merged_and_filtered() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let scratch = Scratch::new();
    let env = format!("logs{}", std::process::id());
    scratch.write(&format!("stacks/{env}.yaml"), &scratch.read("stacks/dev.yaml"));
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .endpoint_url(&moto)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await;
    let cw = aws_sdk_cloudwatchlogs::Client::new(&sdk);
    let group = format!("/orch/{env}/app");
    cw.create_log_group().log_group_name(&group).send().await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    // Two hours back: before the default window of one hour.
    let early = now - 7_200_000;
    let streams = [
        (
            "i-0aaaaaaaaaaaaaaaa",
            "eu-west-1a",
            early,
            vec![(early + 2000, "a first"), (now - 60_000, "a late")],
        ),
        ("i-0bbbbbbbbbbbbbbbb", "eu-west-1b", early + 1000, vec![(early + 3000, "b first")]),
    ];
    for (id, zone, hello, rest) in &streams {
        cw.create_log_stream().log_group_name(&group).log_stream_name(*id).send().await.unwrap();
        let mut events = vec![app_line(
            *hello,
            "identity resolved",
            &format!(r#","availability_zone":"{zone}""#),
        )];
        events.extend(rest.iter().map(|(at, m)| app_line(*at, m, "")));
        cw.put_log_events()
            .log_group_name(&group)
            .log_stream_name(*id)
            .set_log_events(Some(events))
            .send()
            .await
            .unwrap();
    }
    let request = r#","target":"app::access","path":"/from-b","status":200"#;
    cw.put_log_events()
        .log_group_name(&group)
        .log_stream_name("i-0bbbbbbbbbbbbbbbb")
        .log_events(app_line(now - 30_000, "request", request))
        .send()
        .await
        .unwrap();
    let logs = |args: &[&str]| {
        let mut cmd = scratch.orch();
        cmd.envs(moto_envs(&moto)).args(["--env", &env]);
        lines(cmd, args)
    };
    let messages = |ls: &[Value]| -> Vec<String> {
        ls.iter()
            .map(|l| {
                format!("{} {}", l["zone"].as_str().unwrap_or("-"), l["message"].as_str().unwrap())
            })
            .collect()
    };

    let all = logs(&["--since", "3h"]);
    assert_eq!(
        messages(&all),
        [
            "eu-west-1a INFO identity resolved availability_zone=eu-west-1a",
            "eu-west-1b INFO identity resolved availability_zone=eu-west-1b",
            "eu-west-1a INFO a first",
            "eu-west-1b INFO b first",
            "eu-west-1a INFO a late",
            "eu-west-1b INFO request path=/from-b status=200",
        ]
    );
    assert_eq!(all[0]["instance"], "i-0aaaaaaaaaaaaaaaa");
    // Without --since: the last hour only (the group is never read whole), zones still known.
    assert_eq!(
        messages(&logs(&[])),
        ["eu-west-1a INFO a late", "eu-west-1b INFO request path=/from-b status=200"]
    );
    assert_eq!(messages(&logs(&["--zone", "eu-west-1b", "--since", "3h"])).len(), 3);
    assert_eq!(
        messages(&logs(&["--instance", "i-0aaaaaaaaaaaaaaaa", "--since", "5m"])),
        ["eu-west-1a INFO a late"]
    );
    // The zones are known even when the identity lines are before --since.
    assert_eq!(
        messages(&logs(&["--since", "5m"])),
        ["eu-west-1a INFO a late", "eu-west-1b INFO request path=/from-b status=200"]
    );
    assert_eq!(messages(&logs(&["--access"])), ["eu-west-1b INFO request path=/from-b status=200"]);

    // Control characters an instance logged never reach the terminal raw, as text or JSON.
    let evil = "evil \u{1b}]0;pwned\u{7} \u{1b}[2J \u{9b}31m \u{7f}end";
    let event = aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
        .timestamp(now - 20_000)
        .message(evil)
        .build()
        .unwrap();
    cw.put_log_events()
        .log_group_name(&group)
        .log_stream_name("i-0aaaaaaaaaaaaaaaa")
        .log_events(event)
        .send()
        .await
        .unwrap();
    for json in [false, true] {
        let mut cmd = scratch.orch();
        cmd.envs(moto_envs(&moto)).args(["--env", &env, "logs", "--since", "5m"]);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("evil"), "{text}");
        let raw = text.chars().find(|c| c.is_control() && *c != '\n');
        assert!(raw.is_none(), "a raw {raw:?} reached stdout (json: {json}): {text:?}");
        if json {
            let line = text.lines().find(|l| l.contains("evil")).unwrap();
            let v: Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["message"], evil, "the JSON value is the logged text");
        } else {
            let shown = "evil \\x1b]0;pwned\\x07 \\x1b[2J \\u{9b}31m \\x7fend";
            assert!(text.contains(shown), "{text}");
        }
    }

    // --follow: an event put after the start is printed, once.
    let follow =
        Follow::start(scratch.path(), &moto_envs(&moto), &["--env", &env, "--since", "5m"]);
    follow.wait(Duration::from_secs(20), "the existing lines", |l| l["message"] == "INFO a late");
    cw.put_log_events()
        .log_group_name(&group)
        .log_stream_name("i-0aaaaaaaaaaaaaaaa")
        .log_events(app_line(chrono::Utc::now().timestamp_millis(), "a new", ""))
        .send()
        .await
        .unwrap();
    follow.wait(Duration::from_secs(20), "the new event", |l| l["message"] == "INFO a new");
    let again = follow.rx.recv_timeout(aws_poll() * 2);
    assert!(
        again
            .as_ref()
            .ok()
            .is_none_or(|l| l["message"] != "INFO a new" && l["message"] != "INFO a late"),
        "printed twice: {again:?}"
    );
    follow.interrupt();

    // Its reader going away (`orch logs -f | head -1`) ends --follow too, with exit 0.
    let mut hung_up = Follow {
        child: Follow::spawn(scratch.path(), &moto_envs(&moto), &["--env", &env, "--since", "5m"]),
        rx: mpsc::channel().1,
    };
    let child = &mut hung_up.child;
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.contains("INFO a"), "first line: {first}");
    cw.put_log_events()
        .log_group_name(&group)
        .log_stream_name("i-0aaaaaaaaaaaaaaaa")
        .log_events(app_line(chrono::Utc::now().timestamp_millis(), "after the reader left", ""))
        .send()
        .await
        .unwrap();
    let mut status = None;
    support::wait_until(Duration::from_secs(20), "--follow ends once its reader is gone", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let status = status.unwrap();
    assert!(status.success(), "--follow ended with {status} when its reader went away");

    // An environment without a log group: exit 2, naming it.
    let other = format!("{env}x");
    scratch.write(&format!("stacks/{other}.yaml"), &scratch.read("stacks/dev.yaml"));
    let out =
        scratch.orch().envs(moto_envs(&moto)).args(["logs", "--env", &other]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("/orch/{other}/app")));
}

/// How often `--follow` polls CloudWatch Logs.
fn aws_poll() -> Duration {
    orch::logs::aws::POLL
}
