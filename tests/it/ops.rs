//! `orch status` and `orch drift` for an AWS environment, against moto (seeded here with the SDK)
//! and a fake `pulumi` written into the scratch project. Every test uses its own bucket, zones,
//! group and certificate, so they share one moto server safely.
use crate::support::{service, Scratch};
use serde_json::{json, Value};
use std::path::PathBuf;

const REGION: &str = "eu-west-1";
const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

/// A fake pulumi following the CLI contract drift relies on: `refresh --preview-only
/// --expect-no-changes --json` prints a preview digest and exits 0 (clean) or 7 (changes);
/// `stack output --json` prints the outputs. Scenario from `FAKE_PULUMI_SCENARIO`; every call is
/// appended to `$FAKE_PULUMI_LOG` with the backend it was given.
const FAKE_PULUMI: &str = r#"#!/bin/sh
echo "$* backend=$PULUMI_BACKEND_URL cwd=$(pwd)" >> "$FAKE_PULUMI_LOG"
case "$1" in
refresh)
  case "${FAKE_PULUMI_SCENARIO:-clean}" in
  clean)
    cat <<'JSON'
{"steps":[{"op":"refresh","urn":"urn:pulumi:dev::orch::pulumi:pulumi:Stack::orch-dev"},
 {"op":"refresh","urn":"urn:pulumi:dev::orch::aws-native:ec2:Vpc::vpc"},
 {"op":"refresh","urn":"urn:pulumi:dev::orch::aws-native:ec2:SecurityGroup::albSg"}],
 "changeSummary":{"same":3}}
JSON
    exit 0;;
  drift)
    cat <<'JSON'
{"steps":[{"op":"refresh","urn":"urn:pulumi:dev::orch::aws-native:ec2:Vpc::vpc"},
 {"op":"update","urn":"urn:pulumi:dev::orch::aws-native:ec2:SecurityGroup::albSg",
  "diffReasons":["securityGroupIngress"],
  "detailedDiff":{"securityGroupIngress[2]":{"kind":"add","inputDiff":false}}},
 {"op":"delete","urn":"urn:pulumi:dev::orch::aws-native:cloudwatch:Alarm::cpuHigh","detailedDiff":{}}],
 "changeSummary":{"same":1,"update":1,"delete":1}}
JSON
    echo "error: no changes were expected for refresh but changes were proposed" >&2
    exit 7;;
  fail)
    echo "error: failed to read the checkpoint: AccessDenied" >&2
    exit 1;;
  esac;;
stack)
  printf '%s\n' "$FAKE_PULUMI_OUTPUTS"; exit 0;;
esac
echo "fake pulumi: unexpected command $*" >&2
exit 255
"#;

/// One environment seeded into moto.
struct World {
    scratch: Scratch,
    moto: String,
    u: String,
    conf: aws_config::SdkConfig,
    record: Value,
    pulumi_log: PathBuf,
}

/// How to seed.
struct Seed {
    cert_days: i64,
    delegation_ok: bool,
    url: String,
}

impl Default for Seed {
    fn default() -> Self {
        Seed {
            cert_days: 90,
            delegation_ok: true,
            url: "https://orch-dev-1.eu-west-1.elb.amazonaws.com/".into(),
        }
    }
}

/// Subnet and VPC ids of moto's default VPC (EC2 query API; no EC2 SDK in this project).
async fn default_subnets(moto: &str) -> (String, Vec<String>) {
    let auth = format!("AWS4-HMAC-SHA256 Credential=testing/20240101/{REGION}/ec2/aws4_request, SignedHeaders=host, Signature=0");
    let body = reqwest::Client::new()
        .post(moto)
        .header("Authorization", auth)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("Action=DescribeSubnets&Version=2016-11-15")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let tags = |tag: &str| -> Vec<String> {
        body.split(&format!("<{tag}>"))
            .skip(1)
            .filter_map(|s| s.split(&format!("</{tag}>")).next())
            .map(str::to_string)
            .collect()
    };
    let (subnets, zones, vpcs) = (tags("subnetId"), tags("availabilityZone"), tags("vpcId"));
    let pick = |az: &str| {
        subnets
            .iter()
            .zip(&zones)
            .find(|(_, z)| z.as_str() == az)
            .map(|(s, _)| s.clone())
            .expect("moto default subnet")
    };
    (vpcs[0].clone(), vec![pick("eu-west-1a"), pick("eu-west-1b")])
}

fn cert_pem(domain: &str, days: i64) -> (String, String) {
    let end = chrono::Utc::now() + chrono::Duration::days(days);
    let start = chrono::Utc::now() - chrono::Duration::days(30);
    use chrono::Datelike;
    let mut params = rcgen::CertificateParams::new(vec![domain.to_string()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, domain);
    params.not_before = rcgen::date_time_ymd(start.year(), start.month() as u8, start.day() as u8);
    params.not_after = rcgen::date_time_ymd(end.year(), end.month() as u8, end.day() as u8);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl World {
    async fn new(moto: String, seed: Seed) -> World {
        // Credentials given to the SDK directly (never set_var in parallel tests); the orch child
        // process gets them in `orch()`.
        let u = crate::support::unique();
        let conf = crate::support::moto_sdk(&moto, REGION).await;
        let scratch = Scratch::new();
        let (zone, parent) = (format!("dev.orch-{u}.net"), format!("orch-{u}.net"));
        let dev = scratch.read("stacks/dev.yaml");
        let dev = dev
            .replace("dev.orch-demo.net", &zone)
            .replace("parent_zone: orch-demo.net", &format!("parent_zone: {parent}"))
            .replace("s3://orch-state-dev", &format!("s3://orch-state-{u}"));
        scratch.write("stacks/dev.yaml", &dev);
        scratch.write("build/dev/Pulumi.yaml", "name: orch\nruntime: yaml\n");
        scratch.write("tools/pulumi", FAKE_PULUMI);
        std::fs::set_permissions(
            scratch.path().join("tools/pulumi"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();

        // Certificate (ACM import of a self-signed one with the wanted expiry).
        let acm = aws_sdk_acm::Client::new(&conf);
        let (pem, key) = cert_pem(&zone, seed.cert_days);
        let cert_arn = acm
            .import_certificate()
            .certificate(aws_sdk_acm::primitives::Blob::new(pem))
            .private_key(aws_sdk_acm::primitives::Blob::new(key))
            .send()
            .await
            .unwrap()
            .certificate_arn()
            .unwrap()
            .to_string();

        // Load balancer, target group, HTTPS listener serving the certificate.
        use aws_sdk_elasticloadbalancingv2::types::{
            Action, ActionTypeEnum, Certificate, ProtocolEnum, TargetTypeEnum,
        };
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&conf);
        let (vpc, subnets) = default_subnets(&moto).await;
        let tg = elb
            .create_target_group()
            .name(format!("tg-{u}"))
            .protocol(ProtocolEnum::Http)
            .port(8080)
            .vpc_id(vpc)
            .target_type(TargetTypeEnum::Instance)
            .send()
            .await
            .unwrap()
            .target_groups()[0]
            .target_group_arn()
            .unwrap()
            .to_string();
        let lb = elb
            .create_load_balancer()
            .name(format!("lb-{u}"))
            .set_subnets(Some(subnets))
            .send()
            .await
            .unwrap()
            .load_balancers()[0]
            .load_balancer_arn()
            .unwrap()
            .to_string();
        elb.create_listener()
            .load_balancer_arn(lb)
            .protocol(ProtocolEnum::Https)
            .port(443)
            .certificates(Certificate::builder().certificate_arn(&cert_arn).build())
            .default_actions(
                Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(&tg).build(),
            )
            .send()
            .await
            .unwrap();

        // Auto Scaling group over both zones (moto places every instance in the first one).
        let asg = aws_sdk_autoscaling::Client::new(&conf);
        asg.create_launch_configuration()
            .launch_configuration_name(format!("lc-{u}"))
            .image_id("ami-12345678")
            .instance_type("t3.micro")
            .send()
            .await
            .unwrap();
        asg.create_auto_scaling_group()
            .auto_scaling_group_name(format!("asg-{u}"))
            .launch_configuration_name(format!("lc-{u}"))
            .min_size(2)
            .max_size(4)
            .desired_capacity(2)
            .availability_zones("eu-west-1a")
            .availability_zones("eu-west-1b")
            .target_group_arns(&tg)
            .send()
            .await
            .unwrap();

        // Hosted zones and the delegation in the parent.
        use aws_sdk_route53::types::{
            Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
        };
        let r53 = aws_sdk_route53::Client::new(&conf);
        let env_zone = r53
            .create_hosted_zone()
            .name(&zone)
            .caller_reference(format!("z-{u}"))
            .send()
            .await
            .unwrap();
        let ns: Vec<String> = env_zone.delegation_set().unwrap().name_servers().to_vec();
        let parent_zone = r53
            .create_hosted_zone()
            .name(&parent)
            .caller_reference(format!("p-{u}"))
            .send()
            .await
            .unwrap();
        let values = if seed.delegation_ok {
            ns
        } else {
            vec!["ns-1.old-dns.example.".into(), "ns-2.old-dns.example.".into()]
        };
        let set = ResourceRecordSet::builder()
            .name(&zone)
            .r#type(RrType::Ns)
            .ttl(300)
            .set_resource_records(Some(
                values
                    .iter()
                    .map(|v| ResourceRecord::builder().value(v).build().unwrap())
                    .collect(),
            ))
            .build()
            .unwrap();
        r53.change_resource_record_sets()
            .hosted_zone_id(parent_zone.hosted_zone().unwrap().id())
            .change_batch(
                ChangeBatch::builder()
                    .changes(
                        Change::builder()
                            .action(ChangeAction::Upsert)
                            .resource_record_set(set)
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();

        // The deployment record orch up leaves in the state bucket (its own type, so the format agrees).
        let outputs = json!({ "url": seed.url, "asgName": format!("asg-{u}"), "targetGroupArn": tg,
                              "albDnsName": format!("lb-{u}.eu-west-1.elb.amazonaws.com"), "imageDigest": DIGEST });
        let record = serde_json::to_value(orch::state::record::Record {
            state: orch::release::State::Verified,
            note: None,
            revision: "abc1234".into(),
            digest: DIGEST.into(),
            by: None,
            canary: vec![],
            forced: None,
            time: "2026-01-02T03:04:05Z".parse().unwrap(),
            run: orch::state::record::AwsRun {
                env: "dev".into(),
                image_uri: format!("registry.example/orch-app@{DIGEST}"),
                program_hash: "sha256:22".into(),
                config_hash: "sha256:33".into(),
                outputs: serde_json::from_value(outputs).unwrap(),
                certificate_arn: Some(cert_arn.clone()),
                // What pulumi leaves in the stack file: the passphrase's salt (never to be printed).
                stack_file: Some(format!(
                    "encryptionsalt: v1:c2FsdHNhbHQ=:v1:SEEDSALT\nconfig:\n  orch-dev:imageUri: registry.example/orch-app@{DIGEST}\n"
                )),
                ami: None,
                program: None,
                orch_version: "0.0.0".into(),
            },
        })
        .unwrap();
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&conf).force_path_style(true).build(),
        );
        s3.create_bucket()
            .bucket(format!("orch-state-{u}"))
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let pulumi_log = scratch.path().join("pulumi.log");
        let w = World { scratch, moto, u, conf, record, pulumi_log };
        w.put_record(&w.record).await;
        w
    }

    async fn put_record(&self, record: &Value) {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.conf).force_path_style(true).build(),
        );
        s3.put_object()
            .bucket(format!("orch-state-{}", self.u))
            .key("deployments/dev/latest.json")
            .body(aws_sdk_s3::primitives::ByteStream::from(serde_json::to_vec(record).unwrap()))
            .send()
            .await
            .unwrap();
    }

    fn orch(&self, scenario: &str) -> assert_cmd::Command {
        let mut cmd = self.scratch.orch();
        cmd.env("AWS_ENDPOINT_URL", &self.moto)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", REGION)
            .env_remove("AWS_PROFILE")
            .env("ORCH_PULUMI", self.scratch.path().join("tools/pulumi"))
            .env("PULUMI_CONFIG_PASSPHRASE", "test-passphrase")
            .env("FAKE_PULUMI_SCENARIO", scenario)
            .env("FAKE_PULUMI_LOG", &self.pulumi_log)
            .env(
                "FAKE_PULUMI_OUTPUTS",
                json!({ "imageDigest": DIGEST, "url": self.record["outputs"]["url"] }).to_string(),
            );
        cmd
    }
}

/// Run `orch ARGS --json`, returning (exit code, the report, stderr).
fn run_json(mut cmd: assert_cmd::Command, args: &[&str]) -> (i32, Value, String) {
    let out = cmd.args(args).arg("--json").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), report, stderr)
}

fn row<'a>(report: &'a Value, check: &str) -> &'a Value {
    report["rows"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["check"] == check))
        .unwrap_or_else(|| panic!("no `{check}` row in {report:#}"))
}

fn level<'a>(report: &'a Value, check: &str) -> &'a str {
    row(report, check)["level"].as_str().unwrap()
}

/// A one-shot HTTP server on 127.0.0.1 answering 200, for the URL probe.
async fn loopback_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
        }
    });
    format!("http://{addr}/")
}

#[tokio::test(flavor = "multi_thread")]
async fn status_exits_1_when_a_zone_has_no_healthy_instance() {
    let Some(moto) = service("ORCH_TEST_MOTO") else { return };
    let url = loopback_server().await;
    let w = World::new(moto, Seed { url: url.clone(), ..Seed::default() }).await;
    let (code, report, stderr) = run_json(w.orch("clean"), &["status", "--env", "dev"]);
    assert_eq!(code, 1, "{report:#}\n{stderr}");
    assert_eq!(report["verdict"], "degraded");
    // The recorded stack file (the passphrase's salt, pulumi's ciphertexts) stays out of reports.
    let text = report.to_string();
    assert!(!text.contains("encryptionsalt") && !text.contains("SEEDSALT"), "{report:#}");
    assert!(row(&report, "deployment")["data"].get("stack_file").is_none());
    // The envelope every `status --json` starts with (env, target, kind, verdict), as locally.
    for (key, want) in [("env", "dev"), ("target", "aws"), ("kind", "status")] {
        assert_eq!(report[key], want, "{key} in {report:#}");
    }
    // moto puts both instances in one zone (which one depends on its state): the zone judgement
    // must name the other zone as empty.
    assert_eq!(level(&report, "zones"), "bad");
    let summary = row(&report, "zones")["summary"].as_str().unwrap().to_string();
    let empty = summary
        .strip_prefix("no healthy instance in ")
        .expect("a zone without healthy instances")
        .to_string();
    assert!(["eu-west-1a", "eu-west-1b"].contains(&empty.as_str()), "{summary}");
    for inst in row(&report, "instances")["data"]["instances"].as_array().unwrap() {
        assert!(
            !inst.to_string().contains(&empty),
            "an instance sits in the zone judged empty: {inst}"
        );
    }
    assert_eq!(row(&report, "instances")["data"]["instances"].as_array().unwrap().len(), 2);
    // Everything else is healthy, read concurrently from the same record.
    for check in [
        "deployment",
        "instances",
        "targets",
        "certificate",
        "cert-wiring",
        "delegation",
        "probe",
        "database",
    ] {
        assert_eq!(level(&report, check), "ok", "{check}: {report:#}");
    }
    assert!(row(&report, "probe")["summary"].as_str().unwrap().contains("answered 200"));
    // The record as orch up wrote it, minus the config hash (it covers secrets).
    let deployment = &row(&report, "deployment")["data"];
    assert_eq!(
        (deployment["image_digest"].as_str(), deployment["revision"].as_str()),
        (Some(DIGEST), Some("abc1234"))
    );
    assert!(
        deployment["certificate_arn"].as_str().is_some_and(|a| a.starts_with("arn:aws:acm:")),
        "{deployment:#}"
    );
    assert!(deployment.get("config_hash").is_none(), "{deployment:#}");

    // The human table says the same.
    let out = w.orch("clean").args(["status", "--env", "dev"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("status dev: degraded"), "{text}");
    assert!(
        text.contains(&format!("zones        BAD      no healthy instance in {empty}")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_degrades_on_a_certificate_expiring_within_30_days_and_never_probes_fake_names() {
    let Some(moto) = service("ORCH_TEST_MOTO") else { return };
    let w = World::new(moto, Seed { cert_days: 10, ..Seed::default() }).await;
    let (code, report, stderr) = run_json(w.orch("clean"), &["status", "--env", "dev"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(level(&report, "certificate"), "bad");
    let days = row(&report, "certificate")["data"]["days_left"].as_i64().unwrap();
    assert!((8..=10).contains(&days), "{days}");
    // The ALB name from an emulator is not probed at all.
    assert_eq!(level(&report, "probe"), "skipped");
    assert_eq!(level(&report, "database"), "skipped");
}

#[tokio::test(flavor = "multi_thread")]
async fn status_a_failing_api_call_degrades_its_row_and_the_others_still_print() {
    let Some(moto) = service("ORCH_TEST_MOTO") else { return };
    let w = World::new(moto, Seed::default()).await;
    // ACM answers nowhere (a closed port); Auto Scaling is asked for a group that does not exist.
    // The record is one an older orch wrote: no `certificate_arn`, the ARN only as a stack output.
    let mut record = w.record.clone();
    record["outputs"]["asgName"] = json!(format!("gone-{}", w.u));
    record["outputs"]["certificateArn"] = record["certificate_arn"].take();
    record.as_object_mut().unwrap().remove("certificate_arn");
    w.put_record(&record).await;
    let mut cmd = w.orch("clean");
    cmd.env("AWS_ENDPOINT_URL_ACM", "http://127.0.0.1:9");
    let (code, report, stderr) = run_json(cmd, &["status", "--env", "dev"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(level(&report, "certificate"), "error");
    assert!(
        row(&report, "certificate")["summary"].as_str().unwrap().contains("DescribeCertificate"),
        "{report:#}"
    );
    assert_eq!(level(&report, "instances"), "error");
    assert!(row(&report, "instances")["summary"]
        .as_str()
        .unwrap()
        .contains(&format!("gone-{}", w.u)));
    assert_eq!(level(&report, "zones"), "error");
    for check in ["targets", "cert-wiring", "delegation"] {
        assert_eq!(level(&report, check), "ok", "{check}: {report:#}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn status_without_a_deployment_record_exits_2_with_a_hint() {
    let Some(moto) = service("ORCH_TEST_MOTO") else { return };
    let w = World::new(moto, Seed::default()).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&w.conf).force_path_style(true).build(),
    );
    s3.delete_object()
        .bucket(format!("orch-state-{}", w.u))
        .key("deployments/dev/latest.json")
        .send()
        .await
        .unwrap();
    let out = w.orch("clean").args(["status", "--env", "dev"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("environment `dev` has no recorded deployment"), "{stderr}");
    assert!(stderr.contains("hint: deploy first: `orch up --env ENV`"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_absent_exits_0_and_runs_a_preview_only_refresh() {
    let Some(moto) = service("ORCH_TEST_MOTO") else { return };
    let w = World::new(moto, Seed::default()).await;
    let (code, report, stderr) = run_json(w.orch("clean"), &["drift", "--env", "dev"]);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert_eq!(report["verdict"], "none");
    for check in ["resources", "delegation", "cert-wiring", "certificate", "image"] {
        assert_eq!(level(&report, check), "ok", "{check}: {report:#}");
    }
    let log = std::fs::read_to_string(&w.pulumi_log).unwrap();
    let refresh = log.lines().find(|l| l.starts_with("refresh")).unwrap();
    assert!(refresh.contains("--preview-only --expect-no-changes --json --stack dev"), "{log}");
    assert!(refresh.contains(&format!("backend=s3://orch-state-{}", w.u)), "{log}");
    // drift is read-only: pulumi runs on a private copy of the program, never in build/dev.
    assert!(!refresh.ends_with("/build/dev") && refresh.contains("/orch-dev-"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_present_exits_1_listing_resources_and_properties() {
    let Some(moto) = service("ORCH_TEST_MOTO") else { return };
    let w = World::new(moto, Seed::default()).await;
    let (code, report, _) = run_json(w.orch("drift"), &["drift", "--env", "dev"]);
    assert_eq!(code, 1);
    assert_eq!(report["verdict"], "drift");
    let resources = row(&report, "resources");
    assert_eq!(resources["level"], "bad");
    let lines: Vec<&str> =
        resources["lines"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(
        lines,
        [
            "~ aws-native:ec2:SecurityGroup albSg (update): securityGroupIngress[2]",
            "- aws-native:cloudwatch:Alarm cpuHigh (delete)"
        ]
    );
    // Readable in a CI log.
    let out = w.orch("drift").args(["drift", "--env", "dev"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("resources    BAD      pulumi refresh: 2 resource(s) changed outside Pulumi"),
        "{text}"
    );
    assert!(
        text.contains("~ aws-native:ec2:SecurityGroup albSg (update): securityGroupIngress[2]"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_reports_a_drifted_ns_record_in_the_parent_zone() {
    let Some(moto) = service("ORCH_TEST_MOTO") else { return };
    let w = World::new(moto, Seed { delegation_ok: false, ..Seed::default() }).await;
    let (code, report, _) = run_json(w.orch("clean"), &["drift", "--env", "dev"]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(level(&report, "resources"), "ok");
    assert_eq!(level(&report, "delegation"), "bad");
    let lines = row(&report, "delegation")["lines"].to_string();
    assert!(
        lines.contains("stale in parent: ns-1.old-dns.example ns-2.old-dns.example"),
        "{lines}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_reports_an_expiring_certificate_and_a_digest_the_record_does_not_know() {
    let Some(moto) = service("ORCH_TEST_MOTO") else { return };
    let w = World::new(moto, Seed { cert_days: 5, ..Seed::default() }).await;
    let mut cmd = w.orch("clean");
    cmd.env(
        "FAKE_PULUMI_OUTPUTS",
        json!({ "imageDigest": "sha256:99999999999999999999" }).to_string(),
    );
    let (code, report, _) = run_json(cmd, &["drift", "--env", "dev"]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(level(&report, "certificate"), "bad");
    assert_eq!(level(&report, "image"), "bad");
    assert!(
        row(&report, "image")["summary"]
            .as_str()
            .unwrap()
            .contains("stack runs sha256:999999999999"),
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_exits_2_when_pulumi_fails_and_still_prints_the_other_checks() {
    let Some(moto) = service("ORCH_TEST_MOTO") else { return };
    let w = World::new(moto, Seed::default()).await;
    let (code, report, stderr) = run_json(w.orch("fail"), &["drift", "--env", "dev"]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(report["verdict"], "error");
    assert!(row(&report, "resources")["summary"].as_str().unwrap().contains("AccessDenied"));
    assert_eq!(level(&report, "delegation"), "ok");
    assert!(stderr.contains("drift check incomplete"), "{stderr}");
}

#[test]
fn drift_refuses_local_environments_and_a_missing_passphrase_with_exit_2() {
    let scratch = Scratch::new();
    let out = scratch.orch().args(["drift", "--env", "local"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a local environment"));
    // Checked before any AWS call: no endpoint or credentials are needed to get this answer. (A
    // missing build/ is no reason: drift renders the program itself, with the recorded config.)
    let out = scratch
        .orch()
        .env_remove("PULUMI_CONFIG_PASSPHRASE")
        .env_remove("PULUMI_CONFIG_PASSPHRASE_FILE")
        .args(["drift", "--env", "dev"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("PULUMI_CONFIG_PASSPHRASE"), "{stderr}");
}
