//! The AWS clients status and drift use, built once from the shared SDK config
//! ([`crate::aws::sdk_config_with`]) with short timeouts, so a dead endpoint degrades one row
//! quickly. Endpoints (`AWS_ENDPOINT_URL*`, how tests point at moto) and credentials come from there.
use aws_config::timeout::TimeoutConfig;
use std::time::Duration;

/// One client per service we read from.
#[derive(Clone, Debug)]
pub(crate) struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub asg: aws_sdk_autoscaling::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub acm: aws_sdk_acm::Client,
    pub route53: aws_sdk_route53::Client,
    pub cw: aws_sdk_cloudwatch::Client,
}

impl Clients {
    pub(crate) async fn new(region: &str) -> Clients {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_attempt_timeout(Duration::from_secs(10))
            .operation_timeout(Duration::from_secs(30))
            .build();
        let conf = crate::aws::sdk_config_with(region, Some(timeouts)).await;
        Clients {
            s3: crate::aws::s3_client(&conf),
            asg: aws_sdk_autoscaling::Client::new(&conf),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(&conf),
            acm: aws_sdk_acm::Client::new(&conf),
            route53: aws_sdk_route53::Client::new(&conf),
            cw: aws_sdk_cloudwatch::Client::new(&conf),
        }
    }
}

/// A readable one-line description of an SDK error, with its cause chain.
pub(crate) fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}
