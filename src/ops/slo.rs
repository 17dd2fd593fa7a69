//! The error budget of an AWS environment, from its load balancer's CloudWatch metrics
//! (`AWS/ApplicationELB`, dimension `LoadBalancer`): requests are `RequestCount`, failures are
//! `HTTPCode_Target_5XX_Count` + `HTTPCode_ELB_5XX_Count` (sums), read with GetMetricData as
//! hourly sums up to six hours ago and one-minute sums for the last six hours (which the burn
//! rates need; one-minute data is kept 15 days, hourly 455), and the window's p99 of
//! `TargetResponseTime` as one percentile over the whole window. The counts feed the same pure
//! core as the local target ([`crate::slo::budget_of`]). `RequestCount` leaves out requests the
//! balancer rejected before choosing a target, so the availability is, if anything, pessimistic.
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::config::SloSettings;
use crate::slo::{Bucket, Budget, SloError};

const NAMESPACE: &str = "AWS/ApplicationELB";
/// The part of the window read at one-minute resolution (the burn rates' longest period).
const FINE: Duration = Duration::from_secs(6 * 3600);

/// Where the metrics are published: the load balancer's and target group's full names.
#[derive(Debug, Clone)]
pub(crate) struct Balancer {
    pub load_balancer: String,
    pub target_group: Option<String>,
}

/// The budget of `slo` for `lb` as of now; the p99 is None (with the reason) when CloudWatch
/// would not compute it.
pub(crate) async fn budget(
    cw: &aws_sdk_cloudwatch::Client,
    lb: &Balancer,
    slo: &SloSettings,
) -> Result<(Budget, Option<String>), String> {
    let now = SystemTime::now();
    let window = Duration::from_secs(86_400 * u64::from(slo.window_days));
    let start = now - window;
    let mut buckets = sums(cw, &lb.load_balancer, start, now - FINE, 3600).await?;
    buckets.extend(sums(cw, &lb.load_balancer, now - FINE, now, 60).await?);
    let (p99_ms, problem) = match p99(cw, lb, start, now, window).await {
        Ok(Some(v)) => (Some(v), String::new()),
        Ok(None) => {
            (None, "CloudWatch returned no p99 of TargetResponseTime over the window".into())
        }
        Err(e) => (None, format!("the p99 could not be read: {e}")),
    };
    let budget = crate::slo::budget_of(slo, &buckets, p99_ms, now);
    // Without requests there is no p99 to miss.
    let problem = Some(problem).filter(|_| p99_ms.is_none() && budget.requests > 0);
    Ok((budget, problem))
}

fn query(id: &str, metric: &str, dims: Vec<Dimension>, period: i32, stat: &str) -> MetricDataQuery {
    let metric = Metric::builder()
        .namespace(NAMESPACE)
        .metric_name(metric)
        .set_dimensions(Some(dims))
        .build();
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(MetricStat::builder().metric(metric).period(period).stat(stat).build())
        .return_data(true)
        .build()
}

fn dim(name: &str, value: &str) -> Dimension {
    Dimension::builder().name(name).value(value).build()
}

/// Requests and 5xx per period between `from` and `to`.
async fn sums(
    cw: &aws_sdk_cloudwatch::Client,
    lb: &str,
    from: SystemTime,
    to: SystemTime,
    period: i32,
) -> Result<Vec<Bucket>, String> {
    let queries = [
        ("requests", "RequestCount"),
        ("target5xx", "HTTPCode_Target_5XX_Count"),
        ("elb5xx", "HTTPCode_ELB_5XX_Count"),
    ]
    .map(|(id, metric)| query(id, metric, vec![dim("LoadBalancer", lb)], period, "Sum"));
    let mut at: BTreeMap<i64, Bucket> = BTreeMap::new();
    let mut token = None;
    loop {
        let out = cw
            .get_metric_data()
            .set_metric_data_queries(Some(queries.to_vec()))
            .start_time(DateTime::from(from))
            .end_time(DateTime::from(to))
            .scan_by(ScanBy::TimestampAscending)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        for r in out.metric_data_results() {
            for (t, v) in r.timestamps().iter().zip(r.values()) {
                let b = at.entry(t.secs()).or_insert_with(|| Bucket {
                    at: SystemTime::UNIX_EPOCH + Duration::from_secs(t.secs().max(0) as u64),
                    requests: 0,
                    errors: 0,
                });
                let n = v.max(0.0).round() as u64;
                match r.id() {
                    Some("requests") => b.requests += n,
                    _ => b.errors += n,
                }
            }
        }
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(at.into_values().collect());
        }
    }
}

/// The window's 99th percentile of `TargetResponseTime`, in milliseconds (None: no requests).
async fn p99(
    cw: &aws_sdk_cloudwatch::Client,
    lb: &Balancer,
    from: SystemTime,
    to: SystemTime,
    window: Duration,
) -> Result<Option<f64>, String> {
    let mut dims = vec![dim("LoadBalancer", &lb.load_balancer)];
    dims.extend(lb.target_group.as_deref().map(|tg| dim("TargetGroup", tg)));
    // One period over the whole window (a multiple of 3600 s, as data older than 63 days needs).
    let period = window.as_secs().div_ceil(3600) * 3600;
    let q = query("p99", "TargetResponseTime", dims, period as i32, "p99");
    let out = cw
        .get_metric_data()
        .metric_data_queries(q)
        .start_time(DateTime::from(from))
        .end_time(DateTime::from(to))
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let seconds = out.metric_data_results().iter().flat_map(|r| r.values()).copied().next();
    Ok(seconds.map(|s| s * 1000.0))
}

fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    super::cloud::describe(e)
}

/// Where `rec` (the last deployment) says the load balancer publishes its metrics.
pub(crate) fn balancer(rec: &crate::state::record::Record) -> Result<Balancer, String> {
    use crate::outputs::Output;
    let load_balancer = rec.output(Output::LoadBalancerFullName).ok_or_else(|| {
        "the deployment record has no loadBalancerFullName output (deployed by an older orch)"
            .to_string()
    })?;
    Ok(Balancer {
        load_balancer: load_balancer.to_string(),
        target_group: rec.output(Output::TargetGroupFullName).map(str::to_string),
    })
}

/// `orch slo` for an AWS stack: the budget from the metrics of the balancer the last deployment
/// recorded.
pub(crate) async fn for_stack(
    stack: &crate::config::Stack,
    slo: &SloSettings,
) -> Result<(Budget, Option<String>), SloError> {
    let env = stack.name.clone();
    let clients = super::cloud::Clients::new(&stack.region).await;
    let rec = super::record::load(&clients, stack)
        .await
        .map_err(|e| SloError::Record { env: env.clone(), why: e.to_string() })?
        .ok_or_else(|| SloError::NotDeployed { env: env.clone() })?;
    let lb = balancer(&rec).map_err(|why| SloError::NoBalancer { env, why })?;
    budget(&clients.cw, &lb, slo).await.map_err(SloError::Metrics)
}
