//! The priced resources that run: the Auto Scaling group's instances (with their launch template's
//! volumes and monitoring), the database, and the load balancer with its capacity units, public
//! addresses and data out.
use serde_yaml::Value;

use super::resources::{
    lcu_per_hour, list_len, number, reference, str_of, truthy, Pricer, Res, DETAILED_METRICS,
};
use super::{CostError, HOURS};

impl Pricer<'_> {
    /// The instances the group keeps at least (`minSize`), with their volumes and monitoring.
    pub(super) fn group(&mut self, r: Res<'_>, p: &Value) -> Result<(), CostError> {
        let count = p
            .get("minSize")
            .and_then(number)
            .ok_or_else(|| CostError::unpriced(r.name, "a minSize that is not a number"))?;
        let template_ref =
            p.get("launchTemplate").and_then(|t| t.get("launchTemplateId")).and_then(reference);
        let data = template_ref
            .and_then(|t| self.resources.get(t))
            .and_then(|t| t.get("properties")?.get("launchTemplateData"))
            .ok_or_else(|| {
                CostError::unpriced(
                    r.name,
                    "a launch template that is not a resource of the program",
                )
            })?;
        let kind = str_of(data.get("instanceType")).ok_or_else(|| {
            CostError::unpriced(r.name, "a launch template without an instanceType")
        })?;
        self.add(
            r,
            "EC2",
            "instances",
            format!("{count} × {kind} (Linux, minSize)"),
            count * HOURS,
            &format!("ec2.instance.{kind}"),
            None,
        )?;
        for device in
            data.get("blockDeviceMappings").and_then(Value::as_sequence).into_iter().flatten()
        {
            let Some(ebs) = device.get("ebs") else { continue };
            let size = ebs.get("volumeSize").and_then(number).unwrap_or(8.0);
            let volume = str_of(ebs.get("volumeType")).unwrap_or("gp2");
            self.add(
                r,
                "EC2",
                "volumes",
                format!("{count} × {size} GB {volume} volume"),
                count * size,
                &format!("ebs.{volume}"),
                None,
            )?;
        }
        if data.get("monitoring").and_then(|m| m.get("enabled")).is_some_and(truthy) {
            let metrics = count * DETAILED_METRICS;
            self.add(
                r,
                "CloudWatch",
                "monitoring",
                format!("detailed monitoring ({count} × {DETAILED_METRICS} metrics)"),
                metrics,
                "cloudwatch.metric",
                None,
            )?;
        }
        Ok(())
    }

    pub(super) fn database(&mut self, r: Res<'_>, p: &Value) -> Result<(), CostError> {
        let engine = str_of(p.get("engine")).unwrap_or("");
        if engine != "postgres" {
            return Err(CostError::unpriced(
                r.name,
                &format!("engine `{engine}` (the table holds PostgreSQL)"),
            ));
        }
        let class = str_of(p.get("dbInstanceClass"))
            .ok_or_else(|| CostError::unpriced(r.name, "no dbInstanceClass"))?;
        let multi = p.get("multiAz").is_some_and(truthy);
        let (deploy, prefix) =
            if multi { ("Multi-AZ", "rds.multiaz") } else { ("Single-AZ", "rds") };
        self.add(
            r,
            "RDS",
            "instance",
            format!("{class} PostgreSQL, {deploy}"),
            HOURS,
            &format!("{}.{class}", if multi { "rds.multiaz" } else { "rds.instance" }),
            None,
        )?;
        let gb = p.get("allocatedStorage").and_then(number).ok_or_else(|| {
            CostError::unpriced(r.name, "an allocatedStorage that is not a number")
        })?;
        let storage = str_of(p.get("storageType")).unwrap_or("gp2");
        self.add(
            r,
            "RDS",
            "storage",
            format!("{gb} GB {storage}, {deploy}"),
            gb,
            &format!("{prefix}.storage.{storage}"),
            None,
        )
    }

    pub(super) fn load_balancer(&mut self, r: Res<'_>, p: &Value) -> Result<(), CostError> {
        let kind = str_of(p.get("type")).unwrap_or("application");
        if kind != "application" {
            return Err(CostError::unpriced(
                r.name,
                &format!("a `{kind}` load balancer (the table holds application load balancers)"),
            ));
        }
        self.add(
            r,
            "ELB",
            "hours",
            "application load balancer".into(),
            HOURS,
            "elb.alb.hour",
            None,
        )?;
        let u = self.usage;
        let lcus = lcu_per_hour(u.requests_per_month as f64, u.gb_out_per_month) * HOURS;
        let why = format!(
            "{} requests/month, one new connection each; {} GB/month processed",
            u.requests_per_month, u.gb_out_per_month
        );
        self.add(
            r,
            "ELB",
            "lcu",
            "load balancer capacity units".into(),
            lcus,
            "elb.alb.lcu",
            Some(why),
        )?;
        if str_of(p.get("scheme")).unwrap_or("internet-facing") == "internet-facing" {
            let zones = list_len(p.get("subnets")).max(1) as f64;
            self.add(
                r,
                "VPC",
                "ipv4",
                format!("{zones} public IPv4 addresses (one per zone)"),
                zones * HOURS,
                "vpc.ipv4.hour",
                None,
            )?;
            let gb = u.gb_out_per_month;
            self.add(
                r,
                "Data transfer",
                "transfer",
                "data out to the internet".into(),
                gb,
                "transfer.out",
                Some(format!("{gb} GB/month out")),
            )?;
        }
        Ok(())
    }
}
