//! Canary releases and the error budget on the aws target: the instance refresh carries the
//! stack's checkpoints, their hold, the bake and the objective's alarms; the Auto Scaling stand-in
//! walks the checkpoints and rolls the release back when an alarm goes into ALARM at one (its state
//! read from CloudWatch, moto); `orch slo` reads the budget from the load balancer's CloudWatch
//! metrics, and `orch up` refuses while it is exhausted unless `--force`, which the record keeps.
use super::env::*;
use crate::support;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StateValue};
use std::time::{Duration, Instant, SystemTime};

/// The alarms' names as the program gives them (the fake pulumi outputs them; tests share moto).
fn alarms(env: &Env) -> [String; 4] {
    ["target-5xx", "slo-target-5xx", "slo-elb-5xx", "slo-p99"]
        .map(|a| format!("orch-{}-{a}", env.name))
}

fn named_alarms(env: &Env) -> (&'static str, String) {
    let [a, b, c, d] = alarms(env);
    let outputs = serde_json::json!({"targetErrorsAlarm": a, "sloTargetErrorsAlarm": b, "sloElbErrorsAlarm": c, "sloLatencyAlarm": d});
    ("FAKE_PULUMI_OUTPUTS", outputs.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_refresh_holds_its_checkpoints_and_an_alarm_at_one_rolls_it_back() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    env.with_canary(20);
    let (key, named) = named_alarms(&env);
    env.up(DIGEST_A, &[(key, named.as_str())], &[]).success();

    let plan = env.up(DIGEST_B, &[], &["--dry-run"]).success();
    let plan = String::from_utf8_lossy(&plan.get_output().stdout).into_owned();
    assert!(plan.contains("a canary: checkpoints at 10 %, 50 % and 100 % of the group, each held 20 s and 20 s of bake"), "{plan}");

    let (stub, seen) = env.autoscaling("Successful");
    let extra = [("AWS_ENDPOINT_URL_AUTO_SCALING", stub.as_str()), (key, named.as_str())];
    let out = env.up(DIGEST_B, &extra, &[]).success();
    assert!(stderr(&out).contains("instance refresh ir-1: successful"), "{}", stderr(&out));
    let bodies = seen.lock().unwrap().clone();
    let start = form(bodies.iter().find(|b| b.contains("Action=StartInstanceRefresh")).unwrap());
    let get = |k: &str| start.get(k).map(String::as_str);
    let checkpoints: Vec<_> =
        (1..=3).map(|n| get(&format!("Preferences.CheckpointPercentages.member.{n}"))).collect();
    assert_eq!(checkpoints, [Some("10"), Some("50"), Some("100")], "{start:?}");
    assert_eq!(
        (get("Preferences.CheckpointDelay"), get("Preferences.BakeTime")),
        (Some("20"), Some("20"))
    );
    let sent: Vec<String> = (1..=4)
        .map(|n| {
            get(&format!("Preferences.AlarmSpecification.Alarms.member.{n}"))
                .unwrap_or("-")
                .to_string()
        })
        .collect();
    assert_eq!(sent, alarms(&env).to_vec(), "{start:?}");
    let refresh = env.groups().get(&env.asg()).unwrap().refreshes[0].clone();
    assert_eq!((refresh.status.as_str(), refresh.percent), ("Successful", 100));
    let mut status = env.scratch.orch();
    status.envs(env.envs(DIGEST_B)).args(["status", "--env", &env.name]);
    let report = String::from_utf8_lossy(&status.output().unwrap().stdout).into_owned();
    assert!(report.contains("last instance refresh ir-1 ended Successful"), "{report}");
    let looks = bodies.iter().filter(|b| b.contains("Action=DescribeInstanceRefreshes")).count();
    assert!(looks > 3 * 20, "two checkpoints and the bake were each held 20 looks: {looks}");

    // The p99 alarm goes into ALARM while the next refresh holds its first checkpoint.
    let cw = env.cloudwatch().await;
    let [.., p99_alarm] = alarms(&env);
    cw.put_metric_alarm()
        .alarm_name(&p99_alarm)
        .namespace("AWS/ApplicationELB")
        .metric_name("TargetResponseTime")
        .extended_statistic("p99")
        .period(60)
        .evaluation_periods(2)
        .threshold(0.3)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap();
    let version = env.group_version();
    let up = env.up_cmd(DIGEST_A, &extra, &[]);
    let run = tokio::task::spawn_blocking(move || {
        let mut up = up;
        up.output().unwrap()
    });
    let started = Instant::now();
    loop {
        let at_checkpoint = env
            .groups()
            .get(&env.asg())
            .and_then(|g| g.refreshes.first().cloned())
            .is_some_and(|r| r.id == "ir-2" && r.status == "InProgress" && r.percent == 10);
        if at_checkpoint {
            break;
        }
        if run.is_finished() || started.elapsed() > Duration::from_secs(60) {
            let out = run.await.unwrap();
            panic!(
                "the refresh never reached its first checkpoint: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cw.set_alarm_state()
        .alarm_name(&p99_alarm)
        .state_value(StateValue::Alarm)
        .state_reason("test: p99 above the objective")
        .send()
        .await
        .unwrap();
    let out = run.await.unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("RollbackSuccessful"), "{text}");
    assert!(
        text.contains(&format!("alarm {p99_alarm} is in ALARM state at 10 % complete")),
        "{text}"
    );
    assert_eq!(env.group_version(), version, "the group still launches the release it ran");
}

/// The env's load balancer, as CloudWatch names it (its own: tests share moto).
fn balancer(env: &Env) -> String {
    format!("app/orch-{}-alb/50dc6c495c0c9188", env.name)
}

/// The fake pulumi's outputs naming the env's load balancer.
fn outputs(env: &Env) -> (&'static str, String) {
    ("FAKE_PULUMI_OUTPUTS", serde_json::json!({"loadBalancerFullName": balancer(env)}).to_string())
}

/// Count `n` of `metric` for the env's load balancer, ten minutes ago (as the ALB publishes them).
async fn publish(env: &Env, metric: &str, n: f64) {
    let datum = MetricDatum::builder()
        .metric_name(metric)
        .dimensions(Dimension::builder().name("LoadBalancer").value(balancer(env)).build())
        .timestamp((SystemTime::now() - Duration::from_secs(600)).into())
        .value(n)
        .unit(aws_sdk_cloudwatch::types::StandardUnit::Count)
        .build();
    env.cloudwatch()
        .await
        .put_metric_data()
        .namespace("AWS/ApplicationELB")
        .metric_data(datum)
        .send()
        .await
        .unwrap();
}

fn slo_json(env: &Env) -> (i32, serde_json::Value, String) {
    let mut cmd = env.scratch.orch();
    cmd.envs(env.envs(DIGEST_A)).args(["slo", "--env", &env.name, "--json"]);
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {text}"));
    (out.status.code().unwrap_or(-1), json, text)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_budget_is_read_from_cloudwatch_and_an_exhausted_one_gates_up_unless_forced() {
    let Some(moto) = support::service("ORCH_TEST_MOTO") else { return };
    let env = Env::new(&moto, false).await;
    env.with_canary(1);
    let (key, named) = outputs(&env);
    let extra = [(key, named.as_str())];
    env.up(DIGEST_A, &extra, &[]).success();

    // 1000 requests, 4 answered 5xx by the app and 1 by the balancer: 99 % allows 10, half spent.
    publish(&env, "RequestCount", 1000.0).await;
    publish(&env, "HTTPCode_Target_5XX_Count", 4.0).await;
    publish(&env, "HTTPCode_ELB_5XX_Count", 1.0).await;
    let (code, b, text) = slo_json(&env);
    assert_eq!(code, 0, "{b:#} {text}");
    assert_eq!((b["requests"].as_u64(), b["errors"].as_u64()), (Some(1000), Some(5)), "{b:#}");
    let near =
        |v: &serde_json::Value, want: f64| v.as_f64().is_some_and(|x| (x - want).abs() < 1e-9);
    assert!(near(&b["spent_percent"], 50.0) && near(&b["burn_rate_1h"], 0.5), "{b:#}");
    // moto computes no percentile: the p99 is unknown, and `orch slo` says so.
    let said =
        text.contains("no p99 of TargetResponseTime") || text.contains("the p99 could not be read");
    assert!(b["p99_ms"].is_null() && said, "{text}");

    publish(&env, "HTTPCode_ELB_5XX_Count", 10.0).await;
    let (code, b, _) = slo_json(&env);
    assert_eq!((code, b["exhausted"].as_bool()), (1, Some(true)), "{b:#}");

    let version = env.group_version();
    let refused = env.up(DIGEST_B, &extra, &[]).code(1);
    let text = stderr(&refused);
    assert!(
        text.contains("refused: the error budget is exhausted: 15 of 1000 requests failed"),
        "{text}"
    );
    assert_eq!(env.group_version(), version, "nothing was deployed");

    let forced = env.up(DIGEST_B, &extra, &["--force"]).success();
    assert!(stderr(&forced).contains("deployed past an exhausted error budget (--force)"));
    let latest = env.latest().await;
    assert!(
        latest["forced"].as_str().is_some_and(|f| f.contains("15 of 1000 requests failed")),
        "{latest:#}"
    );
    let mut releases = env.scratch.orch();
    releases.envs(env.envs(DIGEST_B)).args(["releases", "--env", &env.name, "--json"]);
    let list: serde_json::Value =
        serde_json::from_slice(&releases.output().unwrap().stdout).unwrap();
    assert!(
        list["releases"][0]["forced"].as_str().is_some_and(|f| f.contains("--force")),
        "{list:#}"
    );
}
