//! The test environment for `orch up` on the aws target: a scratch project with its own env name,
//! bucket and domain on the shared moto, a live local tier behind the fake pulumi's url outputs,
//! and small servers on 127.0.0.1 (an AutoScaling stub, a DNS server).
use crate::support::{self, Scratch, Tier};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A short lease for the lock tests: a killed run's lock is taken over within seconds.
pub(super) const LEASE: (&str, &str) = ("ORCH_LOCK_LEASE_SECONDS", "2");
pub(super) const DIGEST_A: &str =
    "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
pub(super) const DIGEST_B: &str =
    "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A tiny HTTP/1.1 server on 127.0.0.1 answering every request with `handler(method, path, body)`.
/// Its thread ends with the test process.
pub(super) fn serve(
    handler: impl Fn(&str, &str, &str) -> (u16, String) + Send + Sync + 'static,
) -> String {
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
                let (method, path) = (
                    parts.next().unwrap_or("").to_string(),
                    parts.next().unwrap_or("").to_string(),
                );
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

/// The Auto Scaling query API for the groups in `groups` (`$FAKE_PULUMI_STATE/aws/autoscaling.json`,
/// where the fake pulumi creates a group with the launch-template version the program gives it).
/// The state lives in that file, as AWS holds it: a group's version moves only when a refresh with a
/// desired configuration succeeds; one active refresh at a time (`InstanceRefreshInProgress`); an
/// active refresh advances one status per look (DescribeInstanceRefreshes): InProgress ends as
/// `end_status`, Cancelling as Cancelled, RollbackInProgress as RollbackSuccessful. Every request
/// body is kept. `StartInstanceRefresh` is validated as the real API documents it
/// (tests/it/deploy/README.md names the sources): see [`refresh_refusal`]. `program_dir` is the
/// folder of the rendered program, where the launch template's image is read.
pub(super) fn autoscaling_stub(
    end_status: &'static str,
    program_dir: std::path::PathBuf,
    groups: std::path::PathBuf,
    cloudwatch: Option<String>,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(vec![]));
    let kept = seen.clone();
    let state = Mutex::new(());
    let url = serve(move |_, _, body| {
        kept.lock().unwrap().push(body.to_string());
        let _one_at_a_time = state.lock().unwrap();
        let mut all = Groups::load(&groups);
        let firing = |alarms: &[String]| firing_alarm(cloudwatch.as_deref(), alarms);
        let answer = autoscaling_answer(body, &mut all, end_status, &program_dir, &firing);
        all.save(&groups);
        answer
    });
    (url, seen)
}

/// ACM as the real service lists certificates, in front of moto: `ListCertificates` without
/// `Includes.keyTypes` returns only RSA_1024 and RSA_2048 certificates (ACM API reference, `Filters`),
/// which moto does not emulate (it filters only when keyTypes is given). Every other request is
/// forwarded unchanged. The `ListCertificates` bodies orch sent are kept.
pub(super) fn acm_as_aws(moto: &str) -> (String, Arc<Mutex<Vec<String>>>) {
    let upstream = moto.trim_start_matches("http://").trim_end_matches('/').to_string();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(vec![]));
    let kept = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (upstream, kept) = (upstream.clone(), kept.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = vec![];
                let (mut len, mut list) = (0, false);
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    let lower = h.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                        continue;
                    }
                    if lower.starts_with("connection:") {
                        continue;
                    }
                    list |= lower.starts_with("x-amz-target:")
                        && lower.contains("certificatemanager.listcertificates");
                    head.push(h);
                }
                let mut body = vec![0; len];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                if list {
                    let mut doc: serde_json::Value =
                        serde_json::from_slice(&body).unwrap_or_default();
                    kept.lock().unwrap().push(doc.to_string());
                    if doc.pointer("/Includes/keyTypes").is_none() {
                        doc["Includes"]["keyTypes"] = serde_json::json!(["RSA_1024", "RSA_2048"]);
                    }
                    body = doc.to_string().into_bytes();
                }
                let mut up = std::net::TcpStream::connect(&upstream).unwrap();
                let mut request = head.concat();
                request.push_str(&format!(
                    "content-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                ));
                up.write_all(request.as_bytes()).unwrap();
                up.write_all(&body).unwrap();
                let mut answer = vec![];
                let _ = up.read_to_end(&mut answer);
                let mut out = stream;
                let _ = out.write_all(&answer);
            });
        }
    });
    (format!("http://{addr}"), seen)
}

/// The groups of the stand-in, as kept in the shared file.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Groups(std::collections::BTreeMap<String, Group>);

#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Group {
    pub template_id: String,
    pub version: String,
    pub instances: Vec<Instance>,
    #[serde(default)]
    pub refreshes: Vec<Refresh>,
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Instance {
    pub id: String,
    pub zone: String,
    pub version: String,
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Refresh {
    pub id: String,
    pub status: String,
    /// The desired configuration's launch-template version.
    pub version: String,
    /// How a refresh InProgress ends.
    pub end: String,
    /// Looks left before the status moves on (a test seeds a long-running refresh with more).
    #[serde(default = "one")]
    pub looks: u32,
    /// The request's checkpoints (percent of the group), 100 last for a whole refresh.
    #[serde(default)]
    pub checkpoints: Vec<u32>,
    /// Seconds held after the last replacement (`Baking`).
    #[serde(default)]
    pub bake: u32,
    /// Seconds each checkpoint is held (CheckpointDelay; 3600 when checkpoints come without it).
    #[serde(default)]
    pub delay: u32,
    /// The alarms that fail (or roll back) the refresh when one is in ALARM.
    #[serde(default)]
    pub alarms: Vec<String>,
    #[serde(default)]
    pub auto_rollback: bool,
    /// PercentageComplete: the last checkpoint reached.
    #[serde(default)]
    pub percent: u32,
    #[serde(default)]
    pub reason: String,
}

impl Refresh {
    /// A refresh seeded by a test (someone else's): no checkpoints, no alarms.
    pub(super) fn seeded(id: &str, status: &str, version: &str, looks: u32) -> Refresh {
        Refresh {
            id: id.into(),
            status: status.into(),
            version: version.into(),
            end: "Successful".into(),
            looks,
            checkpoints: vec![],
            bake: 0,
            delay: 0,
            alarms: vec![],
            auto_rollback: false,
            percent: 0,
            reason: String::new(),
        }
    }
}

fn one() -> u32 {
    1
}

impl Groups {
    pub(super) fn load(path: &std::path::Path) -> Groups {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }
    pub(super) fn save(&self, path: &std::path::Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let tmp = path.with_extension("stub.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(self).unwrap()).unwrap();
        std::fs::rename(tmp, path).unwrap();
    }
    pub(super) fn get_mut(&mut self, name: &str) -> Option<&mut Group> {
        self.0.get_mut(name)
    }
    pub(super) fn get(&self, name: &str) -> Option<&Group> {
        self.0.get(name)
    }
}

const ACTIVE: [&str; 5] = ["Pending", "InProgress", "Baking", "Cancelling", "RollbackInProgress"];

/// The first of `alarms` CloudWatch (moto, `DescribeAlarms`) has in ALARM, if any: where the real
/// service reads the states of a refresh's AlarmSpecification.
fn firing_alarm(cloudwatch: Option<&str>, alarms: &[String]) -> Option<String> {
    let base = cloudwatch?.trim_start_matches("http://").trim_end_matches('/').to_string();
    // Every alarm in ALARM (moto applies one filter only, AlarmNames before StateValue), then ours.
    let body = "Action=DescribeAlarms&Version=2010-08-01&StateValue=ALARM&MaxRecords=100";
    let mut conn = std::net::TcpStream::connect(&base).ok()?;
    let auth = "AWS4-HMAC-SHA256 Credential=t/20260101/eu-west-1/monitoring/aws4_request, SignedHeaders=host, Signature=0";
    write!(conn, "POST / HTTP/1.1\r\nHost: {base}\r\nAuthorization: {auth}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).ok()?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer).ok()?;
    alarms.iter().find(|a| answer.contains(&format!("<AlarmName>{a}</AlarmName>"))).cloned()
}

/// One look at a refresh: an active one moves to its next status; a success moves the group.
/// With checkpoints, InProgress moves through them, holding each for CheckpointDelay looks (a look
/// stands for a second), then `Baking` for BakeTime looks when it is set. While InProgress or Baking, an alarm of
/// the AlarmSpecification in ALARM ends it: RollbackInProgress with AutoRollback, else Failed.
fn advance(g: &mut Group, i: usize, firing: &dyn Fn(&[String]) -> Option<String>) {
    let r = &mut g.refreshes[i];
    r.looks = r.looks.saturating_sub(1);
    if r.looks > 0 {
        return;
    }
    r.looks = 1;
    if !ACTIVE.contains(&r.status.as_str()) {
        return; // ended: it stays as it ended
    }
    if matches!(r.status.as_str(), "InProgress" | "Baking") && !r.alarms.is_empty() {
        if let Some(alarm) = firing(&r.alarms) {
            r.reason = format!("alarm {alarm} is in ALARM state at {} % complete", r.percent);
            r.status = if r.auto_rollback { "RollbackInProgress" } else { "Failed" }.into();
            return;
        }
    }
    let next = match r.status.as_str() {
        "Pending" => "InProgress".to_string(),
        "InProgress" => match r.checkpoints.iter().find(|c| **c > r.percent) {
            // The next checkpoint reached; held for a look.
            Some(c) => {
                r.percent = *c;
                r.reason = format!("checkpoint {c} % reached");
                if *c < 100 {
                    r.looks = r.delay.max(1);
                }
                "InProgress".into()
            }
            None if r.bake > 0 && r.end == "Successful" => {
                r.percent = 100;
                r.looks = r.bake;
                "Baking".into()
            }
            None => r.end.clone(),
        },
        "Baking" => r.end.clone(),
        "Cancelling" => "Cancelled".into(),
        "RollbackInProgress" => "RollbackSuccessful".into(),
        other => other.to_string(),
    };
    r.status = next;
    if r.status == "Successful" {
        let version = r.version.clone();
        g.version = version.clone();
        for (n, inst) in g.instances.iter_mut().enumerate() {
            inst.id = format!("i-0{:x}{n}", rand_id());
            inst.version = version.clone();
        }
    }
}

fn rand_id() -> u64 {
    static NEXT: AtomicUsize = AtomicUsize::new(0x5eed_0000_0000);
    NEXT.fetch_add(1, Ordering::SeqCst) as u64
}

fn autoscaling_answer(
    body: &str,
    all: &mut Groups,
    end_status: &str,
    program_dir: &std::path::Path,
    firing: &dyn Fn(&[String]) -> Option<String>,
) -> (u16, String) {
    let ns = "xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\"";
    let f = form(body);
    let fault = |code: &str, message: &str| {
        (400, format!("<ErrorResponse {ns}><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>r</RequestId></ErrorResponse>"))
    };
    let ok = |action: &str, result: String| {
        (200, format!("<{action}Response {ns}><{action}Result>{result}</{action}Result><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></{action}Response>"))
    };
    let action = f.get("Action").cloned().unwrap_or_default();
    let name = f
        .get("AutoScalingGroupName")
        .or_else(|| f.get("AutoScalingGroupNames.member.1"))
        .cloned()
        .unwrap_or_default();
    match action.as_str() {
        "DescribeAutoScalingGroups" => {
            let members = match all.0.get(&name) {
                None => String::new(),
                Some(g) => {
                    let lt = |v: &str| format!("<LaunchTemplate><LaunchTemplateId>{}</LaunchTemplateId><Version>{v}</Version></LaunchTemplate>", g.template_id);
                    let instances: String = g.instances.iter().map(|i| format!("<member><InstanceId>{}</InstanceId><InstanceType>t3.micro</InstanceType><AvailabilityZone>{}</AvailabilityZone><LifecycleState>InService</LifecycleState><HealthStatus>Healthy</HealthStatus>{}<ProtectedFromScaleIn>false</ProtectedFromScaleIn></member>", i.id, i.zone, lt(&i.version))).collect();
                    format!("<member><AutoScalingGroupName>{name}</AutoScalingGroupName>{}<MinSize>2</MinSize><MaxSize>4</MaxSize><DesiredCapacity>{}</DesiredCapacity><DefaultCooldown>300</DefaultCooldown><AvailabilityZones><member>eu-west-1a</member><member>eu-west-1b</member></AvailabilityZones><HealthCheckType>ELB</HealthCheckType><CreatedTime>2026-01-01T00:00:00Z</CreatedTime><Instances>{instances}</Instances></member>", lt(&g.version), g.instances.len())
                }
            };
            ok("DescribeAutoScalingGroups", format!("<AutoScalingGroups>{members}</AutoScalingGroups>"))
        }
        "StartInstanceRefresh" => {
            if let Some((code, message)) = refresh_refusal(&f, program_dir) {
                return fault(code, &message);
            }
            let Some(g) = all.get_mut(&name) else {
                return fault("ValidationError", &format!("AutoScalingGroup name not found - {name}"));
            };
            if g.refreshes.iter().any(|r| ACTIVE.contains(&r.status.as_str())) {
                return fault("InstanceRefreshInProgress", "An Instance Refresh is already in progress and blocks the execution of this Instance Refresh.");
            }
            let id = format!("ir-{}", g.refreshes.len() + 1);
            let version = f
                .get("DesiredConfiguration.LaunchTemplate.Version")
                .cloned()
                .unwrap_or_else(|| g.version.clone());
            let list = |prefix: &str| -> Vec<String> {
                (1..).map_while(|n| f.get(&format!("{prefix}.member.{n}")).cloned()).collect()
            };
            let checkpoints = list("Preferences.CheckpointPercentages").iter().filter_map(|c| c.parse().ok()).collect();
            let mut r = Refresh::seeded(&id, "InProgress", &version, 1);
            r.end = end_status.into();
            r.checkpoints = checkpoints;
            r.bake = f.get("Preferences.BakeTime").and_then(|b| b.parse().ok()).unwrap_or(0);
            r.delay = f.get("Preferences.CheckpointDelay").and_then(|b| b.parse().ok()).unwrap_or(3600);
            r.alarms = list("Preferences.AlarmSpecification.Alarms");
            r.auto_rollback = f.get("Preferences.AutoRollback").map(String::as_str) == Some("true");
            g.refreshes.insert(0, r);
            ok("StartInstanceRefresh", format!("<InstanceRefreshId>{id}</InstanceRefreshId>"))
        }
        "CancelInstanceRefresh" => {
            let Some(g) = all.get_mut(&name) else {
                return fault("ValidationError", &format!("AutoScalingGroup name not found - {name}"));
            };
            match g.refreshes.iter_mut().find(|r| ACTIVE.contains(&r.status.as_str())) {
                Some(r) => {
                    r.status = "Cancelling".into();
                    ok("CancelInstanceRefresh", format!("<InstanceRefreshId>{}</InstanceRefreshId>", r.id))
                }
                None => fault("ActiveInstanceRefreshNotFound", "No in progress or pending Instance Refresh found"),
            }
        }
        "DescribeInstanceRefreshes" => {
            let wanted = f.get("InstanceRefreshIds.member.1").cloned();
            let Some(g) = all.get_mut(&name) else {
                return ok("DescribeInstanceRefreshes", "<InstanceRefreshes></InstanceRefreshes>".into());
            };
            let mut members = String::new();
            for i in 0..g.refreshes.len() {
                if wanted.as_ref().is_some_and(|w| *w != g.refreshes[i].id) {
                    continue;
                }
                let r = g.refreshes[i].clone();
                let pct = match r.status.as_str() {
                    "Successful" | "Baking" => 100,
                    _ if !r.checkpoints.is_empty() => r.percent,
                    s if ACTIVE.contains(&s) => 50,
                    _ => 100,
                };
                let reason = if r.reason.is_empty() { "stand-in" } else { r.reason.as_str() };
                members += &format!("<member><InstanceRefreshId>{}</InstanceRefreshId><AutoScalingGroupName>{name}</AutoScalingGroupName><Status>{}</Status><StatusReason>{reason}</StatusReason><PercentageComplete>{pct}</PercentageComplete><DesiredConfiguration><LaunchTemplate><LaunchTemplateId>{}</LaunchTemplateId><Version>{}</Version></LaunchTemplate></DesiredConfiguration></member>", r.id, r.status, g.template_id, r.version);
                advance(g, i, firing);
            }
            ok("DescribeInstanceRefreshes", format!("<InstanceRefreshes>{members}</InstanceRefreshes>"))
        }
        _ => (400, "<ErrorResponse><Error><Code>InvalidAction</Code><Message>stub</Message></Error></ErrorResponse>".into()),
    }
}

/// A query-API body as key → value (percent-decoded).
pub(super) fn form(body: &str) -> std::collections::BTreeMap<String, String> {
    fn decode(s: &str) -> String {
        let bytes = s.replace('+', " ").into_bytes();
        let mut out = vec![];
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                if let Ok(b) =
                    u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or(""), 16)
                {
                    out.push(b);
                    i += 3;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// Why the real `StartInstanceRefresh` would refuse this request, if it would: the percentages out
/// of range, or AutoRollback without a desired configuration, with `$Latest`/`$Default`, or with a
/// launch template whose image is an SSM parameter (`IrreversibleInstanceRefresh`).
pub(super) fn refresh_refusal(
    f: &std::collections::BTreeMap<String, String>,
    program_dir: &std::path::Path,
) -> Option<(&'static str, String)> {
    let num = |k: &str| f.get(k).and_then(|v| v.parse::<i64>().ok());
    let min = num("Preferences.MinHealthyPercentage").unwrap_or(90);
    let max = num("Preferences.MaxHealthyPercentage");
    if !(0..=100).contains(&min) {
        return Some((
            "ValidationError",
            format!("MinHealthyPercentage {min} is out of range 0-100"),
        ));
    }
    if let Some(max) = max {
        if !(100..=200).contains(&max) || max - min > 100 {
            return Some(("ValidationError", format!("MaxHealthyPercentage {max} must be 100-200 and at most 100 above MinHealthyPercentage {min}")));
        }
    }
    // RefreshPreferences (API reference): CheckpointPercentages ascending, unique, 1–100;
    // CheckpointDelay and BakeTime 0–172800 s, CheckpointDelay only with CheckpointPercentages;
    // AlarmSpecification.Alarms at most 10.
    let checkpoints: Vec<i64> = (1..)
        .map_while(|n| f.get(&format!("Preferences.CheckpointPercentages.member.{n}")))
        .map(|v| v.parse().unwrap_or(-1))
        .collect();
    if checkpoints.iter().any(|c| !(1..=100).contains(c))
        || checkpoints.windows(2).any(|w| w[0] >= w[1])
    {
        return Some(("ValidationError", format!("CheckpointPercentages {checkpoints:?} must be unique, ascending values from 1 to 100")));
    }
    for key in ["Preferences.CheckpointDelay", "Preferences.BakeTime"] {
        if num(key).is_some_and(|v| !(0..=172_800).contains(&v)) {
            return Some(("ValidationError", format!("{key} is out of range 0-172800")));
        }
    }
    if num("Preferences.CheckpointDelay").is_some() && checkpoints.is_empty() {
        return Some(("ValidationError", "CheckpointDelay needs CheckpointPercentages".into()));
    }
    if f.contains_key("Preferences.AlarmSpecification.Alarms.member.11") {
        return Some(("ValidationError", "AlarmSpecification takes at most 10 alarms".into()));
    }
    if f.get("Preferences.AutoRollback").map(String::as_str) != Some("true") {
        return None;
    }
    // Observed answer of the real API (terraform-provider-aws#29830, #32428).
    let Some(version) = f.get("DesiredConfiguration.LaunchTemplate.Version") else {
        return Some(("ValidationError", "The request isn't valid. The AutoRollback parameter cannot be set to true when the DesiredConfiguration parameter is empty. Set AutoRollback to false or specify a desired configuration and try again.".into()));
    };
    // The documented fault (API model: IrreversibleInstanceRefreshFault, HTTP 400).
    let irreversible = |why: &str| {
        Some(("IrreversibleInstanceRefresh", format!("The request failed because a desired configuration was not found or an incompatible launch template (uses a Systems Manager parameter instead of an AMI ID) or launch template version ($Latest or $Default) is present on the Auto Scaling group. ({why})")))
    };
    if f.get("DesiredConfiguration.LaunchTemplate.LaunchTemplateId").is_none()
        && f.get("DesiredConfiguration.LaunchTemplate.LaunchTemplateName").is_none()
    {
        return irreversible("the desired configuration names no launch template");
    }
    if version == "$Latest" || version == "$Default" {
        return irreversible(&format!("the desired configuration uses {version}"));
    }
    let program: serde_yaml::Value = std::fs::read_to_string(program_dir.join("Pulumi.yaml"))
        .ok()
        .and_then(|t| serde_yaml::from_str(&t).ok())
        .unwrap_or_default();
    let group_version = program["resources"]["asg"]["properties"]["launchTemplate"]["version"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if group_version == "$Latest" || group_version == "$Default" {
        return irreversible(&format!("the group uses {group_version}"));
    }
    let image = program["resources"]["launchTemplate"]["properties"]["launchTemplateData"]
        ["imageId"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if image.starts_with("resolve:ssm:") {
        return irreversible("the launch template's image is an SSM parameter");
    }
    None
}

/// A DNS server on 127.0.0.1 (UDP) answering NS queries with whatever `answers` holds at the time.
pub(super) fn dns_server(answers: Arc<Mutex<Vec<String>>>) -> String {
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
                    reply.add_answer(Record::from_rdata(
                        q.name().clone(),
                        300,
                        RData::NS(NS(Name::from_ascii(format!("{ns}.")).unwrap())),
                    ));
                }
            }
            let _ = socket.send_to(&reply.to_vec().unwrap(), peer);
        }
    });
    addr
}

pub(super) use crate::support::unique;

/// One environment of its own in a scratch project.
pub(super) struct Env {
    pub(super) scratch: Scratch,
    pub(super) moto: String,
    pub(super) name: String,
    pub(super) bucket: String,
    pub(super) domain: Option<String>,
    pub(super) parent: String,
    pub(super) pulumi_state: tempfile::TempDir,
    /// The live tier behind the `url` and `httpUrl` outputs (shared by every test: they only read it).
    pub(super) tier: &'static Tier,
    pub(super) url: String,
    /// A refresh endpoint that always succeeds; tests override AWS_ENDPOINT_URL_AUTO_SCALING to fail.
    pub(super) autoscaling: String,
    /// The env's own ECR repository in moto, holding DIGEST_A and DIGEST_B.
    pub(super) repo: String,
}

impl Env {
    /// `dev` copied under a unique name; `domain`: with a domain (parent zone created in moto) or not.
    pub(super) async fn new(moto: &str, domain: bool) -> Env {
        Env::build(moto, domain, domain).await
    }

    /// With a domain whose parent zone is at a registrar, not in this account.
    pub(super) async fn with_registrar(moto: &str) -> Env {
        Env::build(moto, true, false).await
    }

    pub(super) async fn build(moto: &str, domain: bool, parent_here: bool) -> Env {
        let id = unique();
        let (name, bucket, parent) =
            (format!("t{id}"), format!("orch-state-t{id}"), format!("orch-t{id}.net"));
        let child = format!("dev.{parent}");
        let scratch = Scratch::new();
        let mut text = support::repo()
            .join("stacks/dev.yaml")
            .pipe(std::fs::read_to_string)
            .unwrap()
            .replace("s3://orch-state-dev", &format!("s3://{bucket}"))
            .replace("repository: orch-app", &format!("repository: orch-app-t{id}"));
        if domain {
            text = text
                .replace("name: dev.orch-demo.net", &format!("name: {child}"))
                .replace("parent_zone: orch-demo.net", &format!("parent_zone: {parent}"));
        } else {
            text = text
                .replace("domain:\n  name: dev.orch-demo.net\n  parent_zone: orch-demo.net\n", "");
        }
        scratch.write(&format!("stacks/{name}.yaml"), &text);
        let program_dir = scratch.path().join("build").join(&name);
        let pulumi_state = tempfile::tempdir().unwrap();
        let groups = pulumi_state.path().join("aws/autoscaling.json");
        let tier = support::shared_tier();
        let url = tier.https("/");
        let env = Env {
            scratch,
            moto: moto.into(),
            name,
            bucket,
            domain: domain.then_some(child),
            parent,
            pulumi_state,
            tier,
            url,
            autoscaling: autoscaling_stub(
                "Successful",
                program_dir.clone(),
                groups,
                Some(moto.into()),
            )
            .0,
            repo: format!("orch-app-t{id}"),
        };
        // The images the runs deploy by digest (ORCH_IMAGE) are in the registry, as after a push.
        let ecr = env.ecr().await;
        ecr.create_repository().repository_name(&env.repo).send().await.unwrap();
        for digest in [DIGEST_A, DIGEST_B] {
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": 2},
                "layers": []
            });
            ecr.put_image()
                .repository_name(&env.repo)
                .image_manifest(manifest.to_string())
                .image_digest(digest)
                .image_tag(format!("seed-{}", &digest[7..15]))
                .send()
                .await
                .unwrap();
        }
        if parent_here {
            env.r53()
                .await
                .create_hosted_zone()
                .name(&env.parent)
                .caller_reference(format!("parent-{id}"))
                .send()
                .await
                .unwrap();
        }
        env
    }

    pub(super) async fn sdk(&self) -> aws_config::SdkConfig {
        support::moto_sdk(&self.moto, "eu-west-1").await
    }
    pub(super) async fn s3(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.sdk().await).force_path_style(true).build(),
        )
    }
    pub(super) async fn r53(&self) -> aws_sdk_route53::Client {
        aws_sdk_route53::Client::new(&self.sdk().await)
    }
    pub(super) async fn ecr(&self) -> aws_sdk_ecr::Client {
        aws_sdk_ecr::Client::new(&self.sdk().await)
    }
    /// The tags of the image `digest` in the env's repository (None: the image is not there).
    pub(super) async fn image_tags(&self, digest: &str) -> Option<Vec<String>> {
        let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(digest).build();
        let out = self
            .ecr()
            .await
            .describe_images()
            .repository_name(&self.repo)
            .image_ids(id)
            .send()
            .await
            .ok()?;
        out.image_details().first().map(|d| d.image_tags().to_vec())
    }
    pub(super) async fn acm(&self) -> aws_sdk_acm::Client {
        aws_sdk_acm::Client::new(&self.sdk().await)
    }

    /// Another Auto Scaling endpoint on the same groups, whose refreshes end as `end_status`.
    pub(super) fn autoscaling(
        &self,
        end_status: &'static str,
    ) -> (String, Arc<Mutex<Vec<String>>>) {
        autoscaling_stub(
            end_status,
            self.program_dir(),
            self.groups_file(),
            Some(self.moto.clone()),
        )
    }
    /// The stand-in's groups file (shared with the fake pulumi).
    pub(super) fn groups_file(&self) -> std::path::PathBuf {
        self.pulumi_state.path().join("aws/autoscaling.json")
    }
    /// The stand-in's groups as they are now.
    pub(super) fn groups(&self) -> Groups {
        Groups::load(&self.groups_file())
    }

    /// The name of the env's Auto Scaling group (the fake pulumi's `asgName` output).
    pub(super) fn asg(&self) -> String {
        format!("orch-{}-asg", self.name)
    }
    /// The launch-template version the env's group launches now.
    pub(super) fn group_version(&self) -> String {
        self.groups().get(&self.asg()).expect("the group exists").version.clone()
    }
    /// Change the env's group as someone outside orch would (another refresh, a manual change).
    pub(super) fn change_group(&self, f: impl FnOnce(&mut Group)) {
        let mut all = self.groups();
        f(all.get_mut(&self.asg()).expect("the group exists"));
        all.save(&self.groups_file());
    }
    /// The latest release record, parsed.
    pub(super) async fn latest(&self) -> serde_json::Value {
        let text = self.object(&format!("deployments/{}/latest.json", self.name)).await;
        serde_json::from_str(&text.expect("a latest release record")).unwrap()
    }
    /// `orch CMD --env <name> ARGS` with the env's environment.
    pub(super) fn orch(&self, cmd: &str, args: &[&str]) -> assert_cmd::assert::Assert {
        self.scratch
            .orch()
            .envs(self.envs(DIGEST_A))
            .args([cmd, "--env", &self.name])
            .args(args)
            .assert()
    }

    /// The folder of the rendered program (`build/<env>/`).
    pub(super) fn program_dir(&self) -> std::path::PathBuf {
        self.scratch.path().join("build").join(&self.name)
    }

    /// Whether a (fake) pulumi holds a stack lock in the backend: a file under
    /// `<bucket>/.pulumi/locks/`, which pulumi removes when it exits (not when it is killed).
    pub(super) fn pulumi_locked(&self) -> bool {
        fn any_file(dir: &std::path::Path) -> bool {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.file_type().is_ok_and(|t| t.is_file()) || any_file(&e.path()))
        }
        any_file(&self.pulumi_state.path().join(&self.bucket).join(".pulumi/locks"))
    }

    pub(super) fn log(&self) -> std::path::PathBuf {
        self.pulumi_state.path().join("calls.log")
    }

    /// A PostgreSQL instance `id` in moto (what a stack's `dbInstanceIdentifier` output names); the
    /// RDS client.
    pub(super) async fn moto_database(&self, id: &str) -> aws_sdk_rds::Client {
        let rds = aws_sdk_rds::Client::new(&self.sdk().await);
        rds.create_db_instance()
            .db_instance_identifier(id)
            .db_instance_class("db.t3.micro")
            .engine("postgres")
            .allocated_storage(20)
            .master_username("orch")
            .master_user_password("not-a-real-one-1")
            .send()
            .await
            .unwrap();
        rds
    }

    /// The fake pulumi's record of the stack: `resources` (name → inputs hash) and `protection`
    /// (name → whether AWS deletion protection is on).
    pub(super) fn pulumi_stack(&self) -> serde_json::Value {
        let path =
            self.pulumi_state.path().join(&self.bucket).join(format!("stacks/{}.json", self.name));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e}", path.display());
        }))
        .unwrap()
    }
    /// The pulumi invocations so far, as argument lists.
    pub(super) fn calls(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The environment every run gets (image by digest, fake pulumi, moto).
    pub(super) fn envs(&self, digest: &str) -> Vec<(String, String)> {
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
            (
                "ORCH_IMAGE",
                format!("123456789012.dkr.ecr.eu-west-1.amazonaws.com/{}@{digest}", self.repo),
            ),
            ("ORCH_POLL_SECONDS", "0".into()),
            ("ORCH_VERIFY_TIMEOUT", "2".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// `orch up` as a background process, with the fake pulumi sleeping `sleep` seconds mid-update
    /// (for crash and contention tests); output discarded.
    pub(super) fn background_up(&self, sleep: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("orch"));
        cmd.env("ORCH_ROOT", self.scratch.path())
            .envs(self.envs(DIGEST_A))
            .env("FAKE_PULUMI_SLEEP", sleep)
            .args(["up", "--env", &self.name])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        cmd
    }

    /// Wait until the lease of the deploy lock left in the bucket has expired.
    pub(super) async fn lease_expired(&self) {
        let key = format!("locks/{}.json", self.name);
        support::wait_until_async(
            Duration::from_secs(30),
            "the left lock's lease expires",
            || async {
                let lock: serde_json::Value =
                    serde_json::from_str(&self.object(&key).await.unwrap_or_default())
                        .unwrap_or_default();
                lock["expires"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .is_some_and(|t| t < chrono::Utc::now())
            },
        )
        .await;
    }

    pub(super) fn up(
        &self,
        digest: &str,
        extra: &[(&str, &str)],
        args: &[&str],
    ) -> assert_cmd::assert::Assert {
        self.up_cmd(digest, extra, args).assert()
    }

    /// The `orch up` [`Env::up`] runs, to run elsewhere (a thread watching it).
    pub(super) fn up_cmd(
        &self,
        digest: &str,
        extra: &[(&str, &str)],
        args: &[&str],
    ) -> assert_cmd::Command {
        let mut cmd = self.scratch.orch();
        cmd.envs(self.envs(digest))
            .envs(extra.iter().copied())
            .args(["up", "--env", &self.name])
            .args(args);
        cmd
    }

    /// Judge the env's releases against an objective and roll them out as a canary (steps 10 %
    /// and 50 %, each held `bake` seconds).
    pub(super) fn with_canary(&self, bake: u32) {
        let path = format!("stacks/{}.yaml", self.name);
        let text = self.scratch.read(&path);
        self.scratch.write(&path, &format!("{text}slo:\n  availability: 99\n  latency_p99_ms: 300\nrollout:\n  strategy: canary\n  steps: [10, 50]\n  bake_seconds: {bake}\n"));
    }

    pub(super) async fn cloudwatch(&self) -> aws_sdk_cloudwatch::Client {
        aws_sdk_cloudwatch::Client::new(&self.sdk().await)
    }

    /// Everything a run of this env could create, listed from moto: its bucket and objects, the zones
    /// under its parent domain with their records, its certificates (other tests share the moto).
    pub(super) async fn moto_state(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let s3 = self.s3().await;
        for b in s3
            .list_buckets()
            .send()
            .await
            .unwrap()
            .buckets()
            .iter()
            .filter(|b| b.name() == Some(&self.bucket))
        {
            out.insert(format!("bucket {}", b.name().unwrap_or("")));
            if b.name() == Some(&self.bucket) {
                for o in s3.list_objects_v2().bucket(&self.bucket).send().await.unwrap().contents()
                {
                    out.insert(format!("object {}", o.key().unwrap_or("")));
                }
            }
        }
        let r53 = self.r53().await;
        for z in r53
            .list_hosted_zones_by_name()
            .dns_name(&self.parent)
            .max_items(20)
            .send()
            .await
            .unwrap()
            .hosted_zones()
            .iter()
            .filter(|z| z.name().trim_end_matches('.').ends_with(&self.parent))
        {
            out.insert(format!("zone {} {}", z.name(), z.id()));
            for r in r53
                .list_resource_record_sets()
                .hosted_zone_id(z.id())
                .send()
                .await
                .unwrap()
                .resource_record_sets()
            {
                let values: Vec<_> = r.resource_records().iter().map(|v| v.value()).collect();
                out.insert(format!(
                    "record {} {} {} {values:?}",
                    z.id(),
                    r.name(),
                    r.r#type().as_str()
                ));
            }
        }
        for c in self
            .certs()
            .await
            .iter()
            .filter(|c| c.domain_name().is_some_and(|d| d.ends_with(&self.parent)))
        {
            out.insert(format!("cert {} {:?}", c.certificate_arn().unwrap_or(""), c.status()));
        }
        out
    }

    pub(super) async fn object(&self, key: &str) -> Option<String> {
        let got = self.s3().await.get_object().bucket(&self.bucket).key(key).send().await.ok()?;
        Some(String::from_utf8(got.body.collect().await.unwrap().into_bytes().to_vec()).unwrap())
    }

    pub(super) async fn zones_named(&self, name: &str) -> Vec<String> {
        let out = self.r53().await.list_hosted_zones_by_name().dns_name(name).send().await.unwrap();
        out.hosted_zones()
            .iter()
            .filter(|z| z.name().trim_end_matches('.') == name)
            .map(|z| z.id().to_string())
            .collect()
    }

    pub(super) async fn certs(&self) -> Vec<aws_sdk_acm::types::CertificateSummary> {
        let pages = self
            .acm()
            .await
            .list_certificates()
            .into_paginator()
            .items()
            .send()
            .collect::<Vec<_>>()
            .await;
        pages.into_iter().map(Result::unwrap).collect()
    }

    pub(super) async fn certs_for(&self, name: &str) -> usize {
        self.certs().await.iter().filter(|c| c.domain_name() == Some(name)).count()
    }

    /// (name, type) of every record set in the zone; a duplicate would show up twice.
    pub(super) async fn record_sets(&self, zone_id: &str) -> Vec<(String, String)> {
        let out = self
            .r53()
            .await
            .list_resource_record_sets()
            .hosted_zone_id(zone_id)
            .send()
            .await
            .unwrap();
        out.resource_record_sets()
            .iter()
            .map(|r| (r.name().to_string(), r.r#type().as_str().to_string()))
            .collect()
    }
}

pub(super) trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}

pub(super) fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}
