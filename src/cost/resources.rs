//! What each resource type of a rendered program costs a month: the priced types turn their
//! properties (and the usage assumptions) into [`Line`]s (the instances, the database and the load
//! balancer in [`super::running`]); [`FREE`] lists the types without a charge of their own, each
//! with the reason. Any other type is an error, never a silent zero.
use serde_yaml::{Mapping, Value};

use super::{Assumptions, CostError, Free, Line, PriceTable, HOURS};

/// Types that cost nothing themselves, and why.
pub(crate) const FREE: &[(&str, &str)] = &[
    ("aws-native:ec2:Vpc", "a VPC has no charge"),
    ("aws-native:ec2:Subnet", "subnets have no charge"),
    ("aws-native:ec2:RouteTable", "route tables have no charge"),
    ("aws-native:ec2:Route", "routes have no charge"),
    ("aws-native:ec2:SubnetRouteTableAssociation", "route table associations have no charge"),
    ("aws-native:ec2:InternetGateway", "an internet gateway has no charge (data out is priced at the load balancer)"),
    ("aws-native:ec2:VpcGatewayAttachment", "attaching a gateway has no charge"),
    ("aws-native:ec2:SecurityGroup", "security groups have no charge"),
    ("aws-native:ec2:SecurityGroupIngress", "security group rules have no charge"),
    ("aws-native:iam:Role", "IAM has no charge"),
    ("aws-native:iam:InstanceProfile", "IAM has no charge"),
    ("aws-native:ec2:LaunchTemplate", "a launch template has no charge; its instances, volumes and monitoring are priced at the Auto Scaling group that launches them"),
    ("aws-native:rds:DbSubnetGroup", "a DB subnet group has no charge"),
    ("aws-native:elasticloadbalancingv2:TargetGroup", "included in the load balancer's hours and LCUs"),
    ("aws-native:elasticloadbalancingv2:Listener", "included in the load balancer's hours and LCUs"),
    ("aws-native:elasticloadbalancingv2:ListenerRule", "included in the load balancer's LCUs (the first 10 rule evaluations of a request are free)"),
    ("aws:route53:Record", "alias queries to a load balancer have no charge; the hosted zone ($0.50/month) is made by `orch up` outside the program"),
];

/// Every type [`price`] prices (the tests hold it against the templates and `price`).
#[cfg(test)]
pub(crate) const PRICED: &[&str] = &[
    "aws-native:autoscaling:AutoScalingGroup",
    "aws-native:autoscaling:ScalingPolicy",
    "aws-native:cloudwatch:Alarm",
    "aws-native:ec2:Eip",
    "aws-native:ec2:NatGateway",
    "aws-native:ec2:VpcEndpoint",
    "aws-native:elasticloadbalancingv2:LoadBalancer",
    "aws-native:logs:LogGroup",
    "aws-native:rds:DbInstance",
    "aws-native:secretsmanager:Secret",
];

/// Metrics one instance's detailed monitoring publishes (CloudWatch pricing, "Detailed Monitoring").
pub(super) const DETAILED_METRICS: f64 = 7.0;
/// Alarms a target tracking policy creates and keeps (one to scale out, one to scale in).
const TRACKING_ALARMS: f64 = 2.0;

/// What pricing one program needs: the prices, the assumptions, every resource, and the lines so far.
pub(super) struct Pricer<'a> {
    pub table: &'a PriceTable,
    pub usage: &'a Assumptions,
    pub resources: &'a Mapping,
    pub lines: Vec<Line>,
    pub free: Vec<Free>,
}

impl Pricer<'_> {
    /// Price resource `name` of type `ty`.
    pub(super) fn price(&mut self, name: &str, ty: &str, p: &Value) -> Result<(), CostError> {
        if let Some((_, reason)) = FREE.iter().find(|(t, _)| *t == ty) {
            self.free.push(Free {
                resource: name.into(),
                resource_type: ty.into(),
                reason: (*reason).into(),
            });
            return Ok(());
        }
        let r = Res { name, ty };
        match ty {
            "aws-native:ec2:NatGateway" => {
                self.add(r, "VPC", "hours", "NAT gateway".into(), HOURS, "ec2.nat.hour", None)?;
                let share = self.usage.log_gb_per_month / self.count("aws-native:ec2:NatGateway");
                let why = format!(
                    "its share of {} GB/month of logs shipped out",
                    self.usage.log_gb_per_month
                );
                self.add(r, "VPC", "data", "data processed".into(), share, "ec2.nat.gb", Some(why))
            }
            "aws-native:ec2:Eip" => self.add(
                r,
                "VPC",
                "ipv4",
                "public IPv4 address".into(),
                HOURS,
                "vpc.ipv4.hour",
                None,
            ),
            "aws-native:ec2:VpcEndpoint" => {
                match str_of(p.get("vpcEndpointType")).unwrap_or("Gateway") {
                    "Gateway" => {
                        self.free.push(Free {
                            resource: name.into(),
                            resource_type: ty.into(),
                            reason: "gateway endpoints (S3, DynamoDB) have no charge".into(),
                        });
                        Ok(())
                    }
                    _ => {
                        let zones = list_len(p.get("subnetIds")).max(1) as f64;
                        self.add(
                            r,
                            "VPC",
                            "hours",
                            format!("interface endpoint × {zones} zones"),
                            zones * HOURS,
                            "vpc.endpoint.hour",
                            None,
                        )
                    }
                }
            }
            "aws-native:secretsmanager:Secret" => self.add(
                r,
                "Secrets Manager",
                "secret",
                "secret".into(),
                1.0,
                "secretsmanager.secret",
                None,
            ),
            "aws-native:logs:LogGroup" => {
                let gb = self.usage.log_gb_per_month;
                self.add(
                    r,
                    "CloudWatch",
                    "ingest",
                    "log ingestion".into(),
                    gb,
                    "logs.ingest",
                    Some(format!("{gb} GB/month of logs")),
                )?;
                let (stored, kept) = match p.get("retentionInDays").and_then(number) {
                    Some(days) => (gb * days / (HOURS / 24.0), format!("kept {days} days")),
                    None => (gb * 12.0, "no retention: a year of logs kept".into()),
                };
                self.add(
                    r,
                    "CloudWatch",
                    "storage",
                    format!("log storage ({kept})"),
                    stored,
                    "logs.storage",
                    Some(format!("{gb} GB/month, {kept}")),
                )
            }
            "aws-native:cloudwatch:Alarm" => {
                // A metric math alarm is billed per metric it reads (CloudWatch pricing: "per
                // alarm metric"); its periods are those of the metrics it queries.
                let queried: Vec<&Value> = p
                    .get("metrics")
                    .and_then(Value::as_sequence)
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m.get("metricStat"))
                    .collect();
                let periods = queried.iter().filter_map(|m| m.get("period")).chain(p.get("period"));
                if periods.filter_map(number).any(|s| s < 60.0) {
                    return Err(CostError::unpriced(
                        name,
                        "a high-resolution alarm (period under 60 s)",
                    ));
                }
                let (count, what) = match queried.len() {
                    0 => (1.0, "standard alarm".to_string()),
                    n => (n as f64, format!("metric math alarm over {n} metrics")),
                };
                self.add(r, "CloudWatch", "alarm", what, count, "cloudwatch.alarm", None)
            }
            "aws-native:autoscaling:ScalingPolicy" => match str_of(p.get("policyType")) {
                Some("TargetTrackingScaling") => self.add(
                    r,
                    "CloudWatch",
                    "alarm",
                    "the policy's alarms (out and in)".into(),
                    TRACKING_ALARMS,
                    "cloudwatch.alarm",
                    None,
                ),
                _ => {
                    self.free.push(Free { resource: name.into(), resource_type: ty.into(), reason: "a step or simple policy has no charge; its alarms are resources of their own".into() });
                    Ok(())
                }
            },
            "aws-native:autoscaling:AutoScalingGroup" => self.group(r, p),
            "aws-native:rds:DbInstance" => self.database(r, p),
            "aws-native:elasticloadbalancingv2:LoadBalancer" => self.load_balancer(r, p),
            _ => Err(CostError::UnknownType { resource: name.into(), resource_type: ty.into() }),
        }
    }

    pub(super) fn count(&self, ty: &str) -> f64 {
        self.resources.values().filter(|r| str_of(r.get("type")) == Some(ty)).count().max(1) as f64
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn add(
        &mut self,
        r: Res<'_>,
        service: &'static str,
        kind: &'static str,
        item: String,
        quantity: f64,
        key: &str,
        assumption: Option<String>,
    ) -> Result<(), CostError> {
        let price = self.table.get(key, r.name)?;
        self.lines.push(Line {
            service,
            resource: r.name.into(),
            resource_type: r.ty.into(),
            kind,
            item,
            quantity: round6(quantity),
            unit: price.unit.clone(),
            unit_usd: price.usd,
            monthly_usd: round6(quantity * price.usd),
            price: key.into(),
            source: self.table.source(price),
            source_url: self.table.url(price),
            assumption,
        });
        Ok(())
    }
}

#[derive(Clone, Copy)]
pub(super) struct Res<'a> {
    pub name: &'a str,
    pub ty: &'a str,
}

/// LCUs an hour at an even load: the larger of new connections (25 a second per LCU, one per
/// request) and processed bytes (1 GB an hour per LCU for instance targets) — ELB pricing's
/// dimensions; active connections (3,000 a minute) and rule evaluations stay below these here.
pub(crate) fn lcu_per_hour(requests_per_month: f64, gb_per_month: f64) -> f64 {
    let per_second = requests_per_month / (HOURS * 3600.0);
    (per_second / 25.0).max(gb_per_month / HOURS)
}

/// Rounded to a millionth (no float noise in reports; cents are rounded only when shown).
pub(crate) fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

pub(super) fn str_of(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
}

pub(super) fn list_len(v: Option<&Value>) -> usize {
    v.and_then(Value::as_sequence).map_or(0, Vec::len)
}

/// A number, also one written as a string (`minSize: "2"`); never a `${…}` reference.
pub(super) fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn truthy(v: &Value) -> bool {
    v.as_bool().unwrap_or(false) || v.as_str() == Some("true")
}

/// The resource a whole-string `${name.output}` reference points at.
pub(super) fn reference(v: &Value) -> Option<&str> {
    let inner = v.as_str()?.strip_prefix("${")?.strip_suffix('}')?;
    Some(inner.split('.').next().unwrap_or(inner))
}
