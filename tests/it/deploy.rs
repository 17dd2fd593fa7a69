//! `orch up` on the aws target against moto, with the fake pulumi (tests/fake-pulumi/pulumi) and a
//! stub AutoScaling endpoint for instance refreshes. The live URL the fake pulumi outputs is a real
//! local tier (two zones behind the TLS load balancer), so `orch up` runs the full `orch verify`
//! suite after `pulumi up`. Every test uses its own environment name, bucket and domain, so they
//! share one moto.
use crate::support::{self, Scratch, Tier};
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DIGEST_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const DIGEST_B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A tiny HTTP/1.1 server on 127.0.0.1 answering every request with `handler(method, path, body)`.
/// Its thread ends with the test process.
fn serve(handler: impl Fn(&str, &str, &str) -> (u16, String) + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(handler);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let handler = handler.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                let mut parts = line.split_whitespace();
                let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
                let mut len = 0;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                let (status, text) = handler(&method, &path, &String::from_utf8_lossy(&body));
                let mut out = stream;
                let _ = write!(out, "HTTP/1.1 {status} X\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}", text.len());
            });
        }
    });
    format!("http://{addr}")
}

/// The AutoScaling query API, as far as instance refreshes go: the refresh reports InProgress
/// once, then `end_status`. Every request body is kept.
fn autoscaling_stub(end_status: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(vec![]));
    let polls = Arc::new(AtomicUsize::new(0));
    let kept = seen.clone();
    let url = serve(move |_, _, body| {
        kept.lock().unwrap().push(body.to_string());
        let ns = "xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\"";
        if body.contains("Action=StartInstanceRefresh") {
            return (200, format!("<StartInstanceRefreshResponse {ns}><StartInstanceRefreshResult><InstanceRefreshId>ir-1</InstanceRefreshId></StartInstanceRefreshResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></StartInstanceRefreshResponse>"));
        }
        if body.contains("Action=DescribeInstanceRefreshes") {
            let (status, pct) = if polls.fetch_add(1, Ordering::SeqCst) == 0 { ("InProgress", 50) } else { (end_status, 100) };
            return (200, format!("<DescribeInstanceRefreshesResponse {ns}><DescribeInstanceRefreshesResult><InstanceRefreshes><member><InstanceRefreshId>ir-1</InstanceRefreshId><AutoScalingGroupName>g</AutoScalingGroupName><Status>{status}</Status><StatusReason>stub</StatusReason><PercentageComplete>{pct}</PercentageComplete></member></InstanceRefreshes></DescribeInstanceRefreshesResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DescribeInstanceRefreshesResponse>"));
        }
        (400, "<ErrorResponse><Error><Code>InvalidAction</Code><Message>stub</Message></Error></ErrorResponse>".into())
    });
    (url, seen)
}

/// A DNS server on 127.0.0.1 (UDP) answering NS queries with whatever `answers` holds at the time.
fn dns_server(answers: Arc<Mutex<Vec<String>>>) -> String {
    use hickory_resolver::proto::op::{Message, MessageType};
    use hickory_resolver::proto::rr::{rdata::NS, Name, RData, Record};
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            let Ok(query) = Message::from_vec(&buf[..n]) else { continue };
            let mut reply = query.clone();
            reply.metadata.message_type = MessageType::Response;
            reply.additionals.clear();
            if let Some(q) = query.queries.first() {
                for ns in answers.lock().unwrap().iter() {
                    reply.add_answer(Record::from_rdata(q.name().clone(), 300, RData::NS(NS(Name::from_ascii(format!("{ns}.")).unwrap()))));
                }
            }
            let _ = socket.send_to(&reply.to_vec().unwrap(), peer);
        }
    });
    addr
}

fn unique() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{}{:x}{}", std::process::id() % 10000, nanos % 0xfffff, N.fetch_add(1, Ordering::SeqCst))
}

/// One environment of its own in a scratch project.
struct Env {
    scratch: Scratch,
    moto: String,
    name: String,
    bucket: String,
    domain: Option<String>,
    parent: String,
    pulumi_state: tempfile::TempDir,
    /// The live tier behind the `url` and `httpUrl` outputs.
    tier: Tier,
    url: String,
    /// A refresh endpoint that always succeeds; tests override AWS_ENDPOINT_URL_AUTO_SCALING to fail.
    autoscaling: String,
}

impl Env {
    /// `dev` copied under a unique name; `domain`: with a domain (parent zone created in moto) or not.
    async fn new(moto: &str, domain: bool) -> Env {
        Env::build(moto, domain, domain).await
    }

    /// With a domain whose parent zone is at a registrar, not in this account.
    async fn with_registrar(moto: &str) -> Env {
        Env::build(moto, true, false).await
    }

    async fn build(moto: &str, domain: bool, parent_here: bool) -> Env {
        let id = unique();
        let (name, bucket, parent) = (format!("t{id}"), format!("orch-state-t{id}"), format!("orch-t{id}.net"));
        let child = format!("dev.{parent}");
        let scratch = Scratch::new();
        let mut text = support::repo().join("stacks/dev.yaml").pipe(std::fs::read_to_string).unwrap().replace("s3://orch-state-dev", &format!("s3://{bucket}"));
        if domain {
            text = text.replace("name: dev.orch-demo.net", &format!("name: {child}")).replace("parent_zone: orch-demo.net", &format!("parent_zone: {parent}"));
        } else {
            text = text.replace("domain:\n  name: dev.orch-demo.net\n  parent_zone: orch-demo.net\n", "");
        }
        scratch.write(&format!("stacks/{name}.yaml"), &text);
        let tier = Tier::scratch();
        tier.up();
        let url = tier.https("/");
        let env = Env { scratch, moto: moto.into(), name, bucket, domain: domain.then_some(child), parent, pulumi_state: tempfile::tempdir().unwrap(), tier, url, autoscaling: autoscaling_stub("Successful").0 };
        if parent_here {
            env.r53().await.create_hosted_zone().name(&env.parent).caller_reference(format!("parent-{id}")).send().await.unwrap();
        }
        env
    }

    async fn sdk(&self) -> aws_config::SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .endpoint_url(&self.moto)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .load()
            .await
    }
    async fn s3(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&self.sdk().await).force_path_style(true).build())
    }
    async fn r53(&self) -> aws_sdk_route53::Client {
        aws_sdk_route53::Client::new(&self.sdk().await)
    }
    async fn acm(&self) -> aws_sdk_acm::Client {
        aws_sdk_acm::Client::new(&self.sdk().await)
    }

    fn log(&self) -> std::path::PathBuf {
        self.pulumi_state.path().join("calls.log")
    }
    /// The pulumi invocations so far, as argument lists.
    fn calls(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.log()).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// The environment every run gets (image by digest, fake pulumi, moto).
    fn envs(&self, digest: &str) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "testing".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "eu-west-1".into()),
            ("AWS_ENDPOINT_URL", self.moto.clone()),
            ("AWS_ENDPOINT_URL_AUTO_SCALING", self.autoscaling.clone()),
            ("ORCH_PULUMI", support::repo().join("tests/fake-pulumi/pulumi").display().to_string()),
            ("FAKE_PULUMI_STATE", self.pulumi_state.path().display().to_string()),
            ("FAKE_PULUMI_LOG", self.log().display().to_string()),
            ("FAKE_PULUMI_URL", self.url.clone()),
            ("FAKE_PULUMI_HTTP_URL", format!("http://127.0.0.1:{}/", self.tier.http)),
            // With a domain the suite checks the certificate chain: trust the tier's CA.
            ("ORCH_VERIFY_CA", self.tier.ca().display().to_string()),
            ("PULUMI_CONFIG_PASSPHRASE", "test-passphrase".into()),
            ("ORCH_IMAGE", format!("123456789012.dkr.ecr.eu-west-1.amazonaws.com/orch-app@{digest}")),
            ("ORCH_POLL_SECONDS", "0".into()),
            ("ORCH_VERIFY_TIMEOUT", "2".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn up(&self, digest: &str, extra: &[(&str, &str)], args: &[&str]) -> assert_cmd::assert::Assert {
        let mut cmd = self.scratch.orch();
        cmd.envs(self.envs(digest)).envs(extra.iter().copied()).args(["up", "--env", &self.name]).args(args);
        cmd.assert()
    }

    /// Everything a run of this env could create, listed from moto: its bucket and objects, the zones
    /// under its parent domain with their records, its certificates (other tests share the moto).
    async fn moto_state(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let s3 = self.s3().await;
        for b in s3.list_buckets().send().await.unwrap().buckets().iter().filter(|b| b.name() == Some(&self.bucket)) {
            out.insert(format!("bucket {}", b.name().unwrap_or("")));
            if b.name() == Some(&self.bucket) {
                for o in s3.list_objects_v2().bucket(&self.bucket).send().await.unwrap().contents() {
                    out.insert(format!("object {}", o.key().unwrap_or("")));
                }
            }
        }
        let r53 = self.r53().await;
        for z in r53.list_hosted_zones_by_name().dns_name(&self.parent).max_items(20).send().await.unwrap().hosted_zones().iter().filter(|z| z.name().trim_end_matches('.').ends_with(&self.parent)) {
            out.insert(format!("zone {} {}", z.name(), z.id()));
            for r in r53.list_resource_record_sets().hosted_zone_id(z.id()).send().await.unwrap().resource_record_sets() {
                let values: Vec<_> = r.resource_records().iter().map(|v| v.value()).collect();
                out.insert(format!("record {} {} {} {values:?}", z.id(), r.name(), r.r#type().as_str()));
            }
        }
        for c in self.certs().await.iter().filter(|c| c.domain_name().is_some_and(|d| d.ends_with(&self.parent))) {
            out.insert(format!("cert {} {:?}", c.certificate_arn().unwrap_or(""), c.status()));
        }
        out
    }

    async fn object(&self, key: &str) -> Option<String> {
        let got = self.s3().await.get_object().bucket(&self.bucket).key(key).send().await.ok()?;
        Some(String::from_utf8(got.body.collect().await.unwrap().into_bytes().to_vec()).unwrap())
    }

    async fn zones_named(&self, name: &str) -> Vec<String> {
        let out = self.r53().await.list_hosted_zones_by_name().dns_name(name).send().await.unwrap();
        out.hosted_zones().iter().filter(|z| z.name().trim_end_matches('.') == name).map(|z| z.id().to_string()).collect()
    }

    async fn certs(&self) -> Vec<aws_sdk_acm::types::CertificateSummary> {
        let pages = self.acm().await.list_certificates().into_paginator().items().send().collect::<Vec<_>>().await;
        pages.into_iter().map(Result::unwrap).collect()
    }

    async fn certs_for(&self, name: &str) -> usize {
        self.certs().await.iter().filter(|c| c.domain_name() == Some(name)).count()
    }

    /// (name, type) of every record set in the zone; a duplicate would show up twice.
    async fn record_sets(&self, zone_id: &str) -> Vec<(String, String)> {
        let out = self.r53().await.list_resource_record_sets().hosted_zone_id(zone_id).send().await.unwrap();
        out.resource_record_sets().iter().map(|r| (r.name().to_string(), r.r#type().as_str().to_string())).collect()
    }
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}

fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn up_runs_every_step_to_a_record_then_the_rerun_is_a_no_op_and_dry_run_changes_nothing() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, true).await;
    let domain = env.domain.clone().unwrap();

    let before = env.moto_state().await;
    let plan = env.up(DIGEST_A, &[], &["--dry-run"]).success();
    let plan_text = String::from_utf8_lossy(&plan.get_output().stdout).into_owned();
    assert!(plan_text.contains("[create] state bucket") && plan_text.contains("[create] hosted zone") && plan_text.contains("[run   ] pulumi up"), "{plan_text}");
    assert_eq!(env.moto_state().await, before, "--dry-run changed moto state");

    let run = env.up(DIGEST_A, &[], &[]).success();
    assert_eq!(String::from_utf8_lossy(&run.get_output().stdout).trim().lines().last(), Some(env.url.as_str()));
    assert!(stderr(&run).contains("✓ verify: ") && stderr(&run).contains("redirect, TLS and our 404 page checked"), "{}", stderr(&run));

    // State bucket: encrypted, closed to the public; no lock left behind; a record with the digest.
    let s3 = env.s3().await;
    assert!(s3.get_bucket_encryption().bucket(&env.bucket).send().await.is_ok());
    let pab = s3.get_public_access_block().bucket(&env.bucket).send().await.unwrap().public_access_block_configuration.unwrap();
    assert_eq!(pab.block_public_acls(), Some(true));
    assert_eq!(env.object(&format!("locks/{}.json", env.name)).await, None, "the lock must be released");
    let record: serde_json::Value = serde_json::from_str(&env.object(&format!("deployments/{}/latest.json", env.name)).await.expect("a deployment record")).unwrap();
    assert_eq!(record["image_digest"], DIGEST_A);
    assert_eq!(record["outputs"]["url"], env.url.as_str());
    assert!(record["program_hash"].as_str().unwrap().starts_with("sha256:"));
    assert!(record["certificate_arn"].as_str().is_some_and(|a| a.starts_with("arn:aws:acm:")), "{record}");

    // DNS: one zone, delegated from the parent with the same name servers; cert ISSUED and wired.
    let zones = env.zones_named(&domain).await;
    assert_eq!(zones.len(), 1);
    let child = env.r53().await.get_hosted_zone().id(&zones[0]).send().await.unwrap();
    let mut ns: Vec<String> = child.delegation_set().unwrap().name_servers().iter().map(|n| n.trim_end_matches('.').to_string()).collect();
    ns.sort();
    let parent_id = env.zones_named(&env.parent).await.remove(0);
    let parent = env.r53().await.list_resource_record_sets().hosted_zone_id(&parent_id).start_record_name(&domain).start_record_type(aws_sdk_route53::types::RrType::Ns).send().await.unwrap();
    let set = parent.resource_record_sets().iter().find(|r| r.name().trim_end_matches('.') == domain).expect("NS delegation in the parent");
    let mut delegated: Vec<String> = set.resource_records().iter().map(|r| r.value().trim_end_matches('.').to_string()).collect();
    delegated.sort();
    assert_eq!(delegated, ns);
    assert_eq!(env.certs_for(&domain).await, 1);
    let sets = env.record_sets(&zones[0]).await;
    assert!(sets.iter().any(|(_, t)| t == "CNAME"), "validation CNAME in the zone: {sets:?}");
    let config_calls: Vec<_> = env.calls().into_iter().filter(|c| c.first().map(String::as_str) == Some("config")).collect();
    let flat = format!("{config_calls:?}");
    assert!(flat.contains("certificateArn=arn:aws:acm:") && flat.contains(&format!("imageUri=123456789012.dkr.ecr.eu-west-1.amazonaws.com/orch-app@{DIGEST_A}")) && flat.contains("hostedZoneId="), "{flat}");

    // Rerun: no-op, pulumi not run again.
    let ups = env.calls().iter().filter(|c| c[0] == "up").count();
    let again = env.up(DIGEST_A, &[], &[]).success();
    assert!(stderr(&again).contains("no changes since the last deployment"), "{}", stderr(&again));
    assert_eq!(env.calls().iter().filter(|c| c[0] == "up").count(), ups, "pulumi up ran on the no-op path");

    // A dry run after the deployment: everything exists, no-op, and still nothing changes.
    let before = env.moto_state().await;
    let plan = env.up(DIGEST_A, &[], &["--dry-run"]).success();
    let plan_text = String::from_utf8_lossy(&plan.get_output().stdout).into_owned();
    assert!(plan_text.contains("no-op") && plan_text.contains("[exists] certificate") && plan_text.contains("[exists] NS delegation"), "{plan_text}");
    assert_eq!(env.moto_state().await, before);
    // A new image is a change.
    let plan = env.up(DIGEST_B, &[], &["--dry-run"]).success();
    assert!(String::from_utf8_lossy(&plan.get_output().stdout).contains("image aaaaaaaaaaaa → bbbbbbbbbbbb"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_concurrent_up_is_refused_naming_the_holder_and_force_unlock_breaks_a_foreign_lock() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    let bin = assert_cmd::cargo::cargo_bin("orch");
    let mut first = std::process::Command::new(&bin)
        .env("ORCH_ROOT", env.scratch.path())
        .envs(env.envs(DIGEST_A))
        .env("FAKE_PULUMI_SLEEP", "3")
        .args(["up", "--env", &env.name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock_key = format!("locks/{}.json", env.name);
    let start = Instant::now();
    let lock = loop {
        if let Some(body) = env.object(&lock_key).await {
            break body;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the first run never took the lock");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let second = env.up(DIGEST_A, &[], &[]).code(2);
    let text = stderr(&second);
    let holder: serde_json::Value = serde_json::from_str(&lock).unwrap();
    assert!(text.contains("is locked by") && text.contains(holder["holder"].as_str().unwrap()) && text.contains(holder["host"].as_str().unwrap()), "{text}");
    assert!(text.contains(&format!("pid {}", first.id())) && text.contains("--force-unlock"), "{text}");
    assert!(first.wait().unwrap().success());
    assert_eq!(env.object(&lock_key).await, None);

    // A lock from another host is never broken silently; --force-unlock breaks it with a warning.
    let foreign = r#"{"holder":"feedface","user":"ci","host":"build-7","pid":1,"since":"2026-01-01T00:00:00Z","command":"orch up"}"#;
    env.s3().await.put_object().bucket(&env.bucket).key(&lock_key).body(foreign.as_bytes().to_vec().into()).send().await.unwrap();
    let refused = env.up(DIGEST_B, &[], &[]).code(2);
    assert!(stderr(&refused).contains("feedface") && stderr(&refused).contains("build-7"));
    let forced = env.up(DIGEST_B, &[], &["--force-unlock"]).success();
    assert!(stderr(&forced).contains("warning: --force-unlock: removing the lock held by feedface"), "{}", stderr(&forced));
}

#[tokio::test(flavor = "multi_thread")]
async fn pulumi_failure_partial_and_cancellation_are_reported_never_recorded_and_release_the_lock() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    let cases = [
        ("fail-mid-update", "failed (exit 1: error)", "failed: db;"),
        ("partial", "failed (exit 1: error)", "partially applied: db;"),
        ("cancel", "was cancelled", "unchanged"),
    ];
    for (scenario, verb, what) in cases {
        let out = env.up(DIGEST_A, &[("FAKE_PULUMI_SCENARIO", scenario), ("FAKE_PULUMI_FAIL_AT", "db")], &[]).code(2);
        let text = stderr(&out);
        assert!(text.contains(verb) && text.contains(what), "{scenario}: {text}");
        if scenario != "cancel" {
            assert!(text.contains(&format!("db: create db: operation failed: fake {scenario}")), "{scenario}: diagnostics kept: {text}");
        }
        assert!(text.contains("hint: "), "{text}");
        assert_eq!(env.object(&format!("deployments/{}/latest.json", env.name)).await, None, "{scenario} must not be recorded");
        assert_eq!(env.object(&format!("locks/{}.json", env.name)).await, None, "{scenario} must release the lock");
    }
    // Other documented exit codes are named.
    let out = env.up(DIGEST_A, &[("FAKE_PULUMI_SCENARIO", "fail-mid-update"), ("FAKE_PULUMI_EXIT", "3")], &[]).code(2);
    assert!(stderr(&out).contains("exit 3: authentication error") && stderr(&out).contains("check the AWS credentials"), "{}", stderr(&out));
    // The rerun converges: the resources done before the failures are unchanged, the rest created.
    let ok = env.up(DIGEST_A, &[], &[]).success();
    assert!(stderr(&ok).contains("pulumi: "), "{}", stderr(&ok));
    assert!(env.object(&format!("deployments/{}/latest.json", env.name)).await.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_orch_mid_run_then_rerunning_converges_without_duplicates() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, true).await;
    let domain = env.domain.clone().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("orch");
    let mut victim = std::process::Command::new(&bin)
        .env("ORCH_ROOT", env.scratch.path())
        .envs(env.envs(DIGEST_A))
        .env("FAKE_PULUMI_SLEEP", "2")
        .args(["up", "--env", &env.name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !env.calls().iter().any(|c| c[0] == "up") {
        assert!(start.elapsed() < Duration::from_secs(60), "pulumi up never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    victim.kill().unwrap();
    victim.wait().unwrap();
    assert!(env.object(&format!("locks/{}.json", env.name)).await.is_some(), "the killed run leaves its lock");
    tokio::time::sleep(Duration::from_millis(2500)).await; // let the orphaned fake pulumi finish

    let rerun = env.up(DIGEST_A, &[], &[]).success();
    assert!(stderr(&rerun).contains("breaking a stale lock"), "{}", stderr(&rerun));
    let zones = env.zones_named(&domain).await;
    assert_eq!(zones.len(), 1, "one hosted zone");
    assert_eq!(env.certs_for(&domain).await, 1, "one certificate");
    let sets = env.record_sets(&zones[0]).await;
    let unique: BTreeSet<_> = sets.iter().collect();
    assert_eq!(unique.len(), sets.len(), "duplicate record sets: {sets:?}");
    assert!(env.object(&format!("deployments/{}/latest.json", env.name)).await.is_some());
    env.up(DIGEST_A, &[], &[]).success();
    assert_eq!(env.zones_named(&domain).await.len(), 1);
    assert_eq!(env.certs_for(&domain).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_image_rolls_the_group_with_an_instance_refresh_and_a_failed_refresh_is_an_error() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    env.up(DIGEST_A, &[], &[]).success();

    let (stub, seen) = autoscaling_stub("Successful");
    let out = env.up(DIGEST_B, &[("AWS_ENDPOINT_URL_AUTO_SCALING", stub.as_str())], &[]).success();
    assert!(stderr(&out).contains("instance refresh ir-1: successful"), "{}", stderr(&out));
    let bodies = seen.lock().unwrap().clone();
    let start = bodies.iter().find(|b| b.contains("Action=StartInstanceRefresh")).expect("StartInstanceRefresh");
    for want in ["MinHealthyPercentage=100", "SkipMatching=true", "AutoRollback=true", &format!("AutoScalingGroupName=orch-{}-asg", env.name)] {
        assert!(start.contains(want), "{want} missing from {start}");
    }
    assert!(bodies.iter().filter(|b| b.contains("Action=DescribeInstanceRefreshes")).count() >= 2, "followed to the end");

    let (stub, _) = autoscaling_stub("RollbackSuccessful");
    let out = env.up(DIGEST_A, &[("AWS_ENDPOINT_URL_AUTO_SCALING", stub.as_str())], &[]).code(2);
    assert!(stderr(&out).contains("ended RollbackSuccessful"), "{}", stderr(&out));
    let record: serde_json::Value = serde_json::from_str(&env.object(&format!("deployments/{}/latest.json", env.name)).await.unwrap()).unwrap();
    assert_eq!(record["image_digest"], DIGEST_B, "a rolled-back deployment is not recorded");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_domain_a_self_signed_certificate_is_imported_once_and_reused() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    env.up(DIGEST_A, &[], &[]).success();
    let tagged = || async {
        let acm = env.acm().await;
        let mut n = 0;
        for c in env.certs().await {
            let tags = acm.list_tags_for_certificate().certificate_arn(c.certificate_arn().unwrap()).send().await.unwrap();
            n += tags.tags().iter().filter(|t| t.key() == "orch-env" && t.value() == Some(env.name.as_str())).count();
        }
        n
    };
    assert_eq!(tagged().await, 1);
    env.up(DIGEST_B, &[], &[]).success();
    assert_eq!(tagged().await, 1, "the certificate is reused, not imported again");
    let plan = env.up(DIGEST_B, &[], &["--dry-run"]).success();
    assert!(String::from_utf8_lossy(&plan.get_output().stdout).contains("[exists] certificate        self-signed, 36"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_verification_is_a_finding_and_is_not_recorded() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    // The tier answers HTTPS, but nothing listens where the program says HTTP is: the redirect fails.
    let out = env.up(DIGEST_A, &[("FAKE_PULUMI_HTTP_URL", "http://127.0.0.1:9/")], &[]).code(1);
    let text = stderr(&out);
    assert!(text.contains("failed verification"), "{text}");
    let row = |name: &str| text.lines().find(|l| l.contains(name)).unwrap_or_default().to_string();
    assert!(row("http redirects to https").contains("FAIL"), "{text}");
    assert!(row("requests reach ≥2 zones").contains("pass") && row("unknown path gets our 404 page").contains("pass"), "the whole suite ran: {text}");
    assert_eq!(env.object(&format!("deployments/{}/latest.json", env.name)).await, None);

    // Nothing is recorded, so `orch verify --env` has no URL to test yet; after a good run it has.
    let out = env.scratch.orch().envs(env.envs(DIGEST_A)).args(["verify", "--env", &env.name]).assert().code(2);
    assert!(stderr(&out).contains("has no recorded deployment"), "{}", stderr(&out));
    env.up(DIGEST_A, &[], &[]).success();
    let out = env.scratch.orch().envs(env.envs(DIGEST_A)).args(["verify", "--env", &env.name, "--json"]).assert().success();
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["zones"].as_array().unwrap().len(), 2, "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn down_destroys_the_stack_retires_the_record_keeps_the_zone_and_the_next_up_deploys_again() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, true).await;
    let down = |args: &[&str]| {
        let mut cmd = env.scratch.orch();
        cmd.envs(env.envs(DIGEST_A)).args(["down", "--env", &env.name]).args(args);
        cmd.assert()
    };
    // Never deployed: nothing to do, nothing created.
    let before = env.moto_state().await;
    let out = down(&[]).success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("nothing was deployed"));
    assert_eq!(env.moto_state().await, before);

    env.up(DIGEST_A, &[], &[]).success();
    let latest = format!("deployments/{}/latest.json", env.name);
    let before = env.moto_state().await;
    let plan = down(&["--dry-run"]).success();
    let text = String::from_utf8_lossy(&plan.get_output().stdout).into_owned();
    assert!(text.contains("[destroy] pulumi destroy") && text.contains("[retire ] deployment record") && text.contains("hosted zone and NS delegation"), "{text}");
    assert_eq!(env.moto_state().await, before, "--dry-run changed moto state");
    assert!(!env.calls().iter().any(|c| c[0] == "destroy"));

    let out = down(&[]).success();
    assert!(stderr(&out).contains("✓ stack") && stderr(&out).contains("destroyed"), "{}", stderr(&out));
    let destroy = env.calls().into_iter().find(|c| c[0] == "destroy").expect("pulumi destroy ran");
    assert!(destroy.iter().any(|a| a == "--yes") && destroy.iter().any(|a| a == "--event-log"), "{destroy:?}");
    assert_eq!(env.object(&latest).await, None, "the record is retired");
    assert_eq!(env.object(&format!("locks/{}.json", env.name)).await, None, "the lock is released");
    let history = env.s3().await.list_objects_v2().bucket(&env.bucket).prefix(format!("deployments/{}/history/", env.name)).send().await.unwrap();
    assert!(history.contents().iter().any(|o| o.key().unwrap_or("").ends_with("-destroyed.json")));
    let domain = env.domain.clone().unwrap();
    assert_eq!(env.zones_named(&domain).await.len(), 1, "the zone is kept");
    assert_eq!(env.certs_for(&domain).await, 1, "the certificate is kept");

    // The same digest again is not a no-op: the stack is gone, so up deploys and records anew.
    let ups = env.calls().iter().filter(|c| c[0] == "up").count();
    let again = env.up(DIGEST_A, &[], &[]).success();
    assert!(!stderr(&again).contains("no changes since the last deployment"), "{}", stderr(&again));
    assert_eq!(env.calls().iter().filter(|c| c[0] == "up").count(), ups + 1);
    assert!(env.object(&latest).await.is_some());
    assert_eq!(env.zones_named(&domain).await.len(), 1, "the kept zone is reused");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registrar_delegation_is_checked_by_a_dns_query_before_the_certificate() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::with_registrar(&moto).await;
    let domain = env.domain.clone().unwrap();
    let answers = Arc::new(Mutex::new(vec!["ns1.old-registrar.example".to_string()]));
    let dns = dns_server(answers.clone());

    // Public DNS still names the old name servers: the run stops, printing the ones to set.
    let out = env.up(DIGEST_A, &[("ORCH_DNS_SERVER", dns.as_str())], &[]).code(2);
    let text = stderr(&out);
    assert!(text.contains(&format!("public DNS does not delegate {domain}")) && text.contains("ns1.old-registrar.example"), "{text}");
    assert!(text.contains("at your registrar"), "{text}");
    let zones = env.zones_named(&domain).await;
    assert_eq!(zones.len(), 1);
    let zone = env.r53().await.get_hosted_zone().id(&zones[0]).send().await.unwrap();
    let ns: Vec<String> = zone.delegation_set().unwrap().name_servers().iter().map(|n| n.trim_end_matches('.').to_string()).collect();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(ns.iter().all(|n| stdout.contains(n.as_str())), "the name servers to set are printed: {stdout}");
    assert_eq!(env.certs_for(&domain).await, 0, "no certificate is requested before the delegation holds");
    assert_eq!(env.object(&format!("locks/{}.json", env.name)).await, None);

    // The registrar now delegates to the zone: the run goes through.
    *answers.lock().unwrap() = ns.iter().map(|n| n.to_uppercase()).collect();
    let out = env.up(DIGEST_A, &[("ORCH_DNS_SERVER", dns.as_str())], &[]).success();
    assert!(stderr(&out).contains(&format!("✓ public DNS delegates {domain}")), "{}", stderr(&out));
    assert_eq!(env.zones_named(&domain).await.len(), 1, "the zone is reused");

    // No resolver answers (offline): the check is skipped with a note, never a mismatch.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let out = env.up(DIGEST_B, &[("ORCH_DNS_SERVER", addr.as_str())], &[]).success();
    assert!(stderr(&out).contains("delegation check by DNS skipped: no answer"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn up_builds_the_image_pushes_it_to_a_real_registry_and_deploys_it_by_digest() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let Some(registry) = support::service("ORCH_TEST_REGISTRY") else { return };
    let env = Env::new(&moto, false).await;
    let repository = format!("orch-deploy-{}", env.name);
    let stack = env.scratch.read(&format!("stacks/{}.yaml", env.name));
    env.scratch.write(&format!("stacks/{}.yaml", env.name), &stack.replace("  repository: orch-app", &format!("  repository: {repository}\n  registry: {registry}")));
    let app = crate::image::static_app();
    let up = |args: &[&str]| {
        let mut cmd = env.scratch.orch();
        cmd.envs(env.envs(DIGEST_A)).env_remove("ORCH_IMAGE").env("ORCH_APP_BINARY", &app).args(["up", "--env", &env.name]).args(args);
        cmd.assert()
    };

    let first = up(&[]).success();
    let text = stderr(&first);
    let pushed: u64 = text.lines().find_map(|l| l.strip_prefix("✓ image in the registry (")).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).expect(&text);
    assert!(pushed > 0, "{text}");
    let record: serde_json::Value = serde_json::from_str(&env.object(&format!("deployments/{}/latest.json", env.name)).await.unwrap()).unwrap();
    let digest = record["image_digest"].as_str().unwrap().to_string();
    assert_eq!(record["image_uri"], format!("{registry}/{repository}@{digest}"));
    // pulumi was given exactly that reference, and the registry serves it.
    assert!(format!("{:?}", env.calls()).contains(&format!("imageUri={registry}/{repository}@{digest}")));
    let out = std::process::Command::new("skopeo").args(["inspect", "--tls-verify=false", &format!("docker://{registry}/{repository}@{digest}")]).output().expect("skopeo");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Nothing changed: the rebuilt image has the same digest, so the no-op path is taken.
    let ups = env.calls().iter().filter(|c| c[0] == "up").count();
    let again = up(&[]).success();
    assert!(stderr(&again).contains("no changes since the last deployment"), "{}", stderr(&again));
    assert_eq!(env.calls().iter().filter(|c| c[0] == "up").count(), ups);
    // --force deploys again; the registry already has every blob.
    let forced = up(&["--force"]).success();
    assert!(stderr(&forced).contains("✓ image in the registry (0 bytes pushed)"), "{}", stderr(&forced));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pulumi_killed_mid_update_leaves_its_lock_which_the_rerun_cancels_but_never_a_live_one() {
    use std::os::unix::process::CommandExt;
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    let locks = env.pulumi_state.path().join(&env.bucket).join("locks/organization/orch").join(&env.name);
    let held = || std::fs::read_dir(&locks).map(|d| d.count()).unwrap_or(0);

    // The whole process group dies (a CI runner cancelled, a laptop lid closed): orch and pulumi.
    let mut victim = std::process::Command::new(assert_cmd::cargo::cargo_bin("orch"))
        .env("ORCH_ROOT", env.scratch.path())
        .envs(env.envs(DIGEST_A))
        .env("FAKE_PULUMI_SLEEP", "30")
        .args(["up", "--env", &env.name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while held() == 0 {
        assert!(start.elapsed() < Duration::from_secs(60), "pulumi never took its lock");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(victim.id() as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    victim.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(held(), 1, "pulumi's lock is left behind");

    // The rerun breaks orch's stale lock, then pulumi's (its process is gone), and converges.
    let rerun = env.up(DIGEST_A, &[], &[]).success();
    let text = stderr(&rerun);
    assert!(text.contains("breaking a stale lock") && text.contains("gone from this host: `pulumi cancel`"), "{text}");
    assert!(env.calls().iter().any(|c| c[0] == "cancel" && c.contains(&"--yes".to_string())));
    assert_eq!(held(), 0);
    assert!(env.object(&format!("deployments/{}/latest.json", env.name)).await.is_some());

    // A holder that is alive (this test process) is never cancelled: exit 2 naming it.
    std::fs::create_dir_all(&locks).unwrap();
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let lock = serde_json::json!({ "pid": std::process::id(), "username": "ci", "hostname": host, "timestamp": "2026-11-25T12:00:00Z" });
    std::fs::write(locks.join("live.json"), lock.to_string()).unwrap();
    let refused = env.up(DIGEST_A, &[], &["--force"]).code(2);
    let text = stderr(&refused);
    assert!(text.contains(&format!("is locked by ci@{host} (pid {})", std::process::id())) && text.contains("pulumi cancel --yes --stack"), "{text}");
    assert_eq!(held(), 1, "a live holder's lock is kept");
    assert_eq!(env.object(&format!("locks/{}.json", env.name)).await, None, "orch's own lock is released");
}

#[test]
fn a_protected_environment_needs_yes_without_a_terminal() {
    let scratch = Scratch::new();
    let out = scratch.orch().env("AWS_EC2_METADATA_DISABLED", "true").args(["up", "--env", "prod"]).assert().code(2);
    let text = stderr(&out);
    assert!(text.contains("`prod` is protected") && text.contains("--yes"), "{text}");
}
