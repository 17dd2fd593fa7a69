//! `orch cost`: the tables of dev and prod against totals computed here by hand from the price table,
//! `--json` against the text, an unknown resource type (exit 2), the budget through `orch check`,
//! and docs/programs.md's cost section against what `orch cost` prints now.
use crate::support::{repo, Scratch};
use serde_json::Value;

fn prices() -> Value {
    let text = std::fs::read_to_string(repo().join("data/prices/eu-west-1.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn cost_json(scratch: &Scratch, env: &str) -> Value {
    let out = scratch.orch().args(["cost", "--env", env, "--json"]).assert().code(0);
    serde_json::from_slice(&out.get_output().stdout).unwrap()
}

/// The month both stacks run at the defaults of `cost:`: 10 M requests, 50 GB out, 5 GB of logs.
struct Shape {
    nat_gateways: f64,
    instance: &'static str,
    db: &'static str,
    storage: &'static str,
    storage_gb: f64,
    log_days: f64,
    /// Alarm metrics beyond the target-5xx alarm and the scaling policy's two (slo: alarms).
    slo_alarm_metrics: f64,
}

/// The expected monthly total, term by term, from the table's figures.
fn by_hand(s: &Shape) -> f64 {
    let p = prices();
    let usd = |key: &str| p["prices"][key]["usd"].as_f64().unwrap_or_else(|| panic!("{key}"));
    let (h, requests, gb_out, log_gb) = (730.0, 10_000_000.0, 50.0, 5.0);
    let nat = s.nat_gateways * (h * usd("ec2.nat.hour") + h * usd("vpc.ipv4.hour"))
        + log_gb * usd("ec2.nat.gb");
    let logs = log_gb * usd("logs.ingest") + log_gb * s.log_days / (h / 24.0) * usd("logs.storage");
    let instances = 2.0 * h * usd(&format!("ec2.instance.{}", s.instance))
        + 2.0 * 20.0 * usd("ebs.gp3")
        + 2.0 * 7.0 * usd("cloudwatch.metric");
    // The 5xx alarm and the scaling policy's two, plus the objective's: two ratios over two
    // metrics each and the p99 (an alarm metric each, CloudWatch pricing).
    let alarms = (3.0 + s.slo_alarm_metrics) * usd("cloudwatch.alarm");
    let db = h * usd(s.db) + s.storage_gb * usd(s.storage);
    let lcu_per_hour = (requests / (h * 3600.0) / 25.0).max(gb_out / h);
    let alb = h * usd("elb.alb.hour")
        + lcu_per_hour * h * usd("elb.alb.lcu")
        + 2.0 * h * usd("vpc.ipv4.hour")
        + gb_out * usd("transfer.out");
    let secrets = usd("secretsmanager.secret"); // the app's database credentials (appDbSecret)
    nat + logs + instances + alarms + db + alb + secrets
}

#[test]
fn cost_of_dev_and_prod_matches_the_total_computed_by_hand_from_the_price_table() {
    let scratch = Scratch::new();
    let dev = Shape {
        nat_gateways: 1.0,
        instance: "t3.micro",
        db: "rds.instance.db.t4g.micro",
        storage: "rds.storage.gp3",
        storage_gb: 20.0,
        log_days: 30.0,
        slo_alarm_metrics: 0.0,
    };
    let prod = Shape {
        nat_gateways: 2.0,
        instance: "t3.small",
        db: "rds.multiaz.db.t3.small",
        storage: "rds.multiaz.storage.gp3",
        storage_gb: 50.0,
        log_days: 90.0,
        slo_alarm_metrics: 5.0,
    };
    let mut totals = vec![];
    for (env, shape) in [("dev", dev), ("prod", prod)] {
        let json = cost_json(&scratch, env);
        let expected = by_hand(&shape);
        let total = json["total_usd"].as_f64().unwrap();
        assert!((total - expected).abs() < 1e-5, "{env}: orch says {total}, by hand {expected}");
        let text = scratch.orch().args(["cost", "--env", env]).assert().code(0);
        let text = String::from_utf8_lossy(&text.get_output().stdout).into_owned();
        assert!(text.contains(&format!("total ${expected:.2}/month")), "{env}:\n{text}");
        // --json carries every line the table shows, each with its quantity, price and source.
        let lines = json["lines"].as_array().unwrap();
        for l in lines {
            let shown = format!("{:.2}", l["monthly_usd"].as_f64().unwrap());
            assert!(
                text.lines().any(|t| t.trim_start().starts_with(l["resource"].as_str().unwrap())
                    && t.contains(l["item"].as_str().unwrap())
                    && t.contains(&shown)),
                "{env}: {l} is not in the table:\n{text}"
            );
            assert!(
                l["source_url"]
                    .as_str()
                    .unwrap()
                    .starts_with("https://pricing.us-east-1.amazonaws.com/offers/v1.0/aws/"),
                "{l}"
            );
            assert!(
                l["quantity"].as_f64().unwrap() > 0.0 && l["unit_usd"].as_f64().unwrap() > 0.0,
                "{l}"
            );
        }
        let table_rows = text.lines().filter(|t| t.contains(" × $")).count();
        assert_eq!(table_rows, lines.len(), "{env}:\n{text}");
        assert!(
            text.contains("EC2\n") && text.contains("RDS\n") && text.contains("free ("),
            "{text}"
        );
        totals.push(total);
    }
    assert!(totals[0] < totals[1], "dev's economy profile costs less than prod: {totals:?}");
}

#[test]
fn a_program_with_an_unknown_resource_type_fails_cost_with_exit_2_naming_it() {
    let scratch = Scratch::new();
    let path = "pulumi/partials/dns.hbs";
    let queue = "  jobs:\n    type: aws-native:sqs:Queue\n    properties: {}\n";
    scratch.write(path, &format!("{queue}{}", scratch.read(path)));
    let out = scratch.orch().args(["cost", "--env", "prod"]).assert().code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("`jobs`") && stderr.contains("aws-native:sqs:Queue"), "{stderr}");
    assert!(out.get_output().stdout.is_empty(), "no table, no partial total");
}

#[test]
fn a_region_without_a_price_table_fails_cost_with_exit_2_naming_the_file() {
    let scratch = Scratch::new();
    std::fs::remove_file(scratch.path().join("data/prices/eu-west-1.json")).unwrap();
    let out = scratch.orch().args(["cost", "--env", "dev"]).assert().code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("data/prices/eu-west-1.json") && stderr.contains("prices-refresh"),
        "{stderr}"
    );
}

#[test]
fn a_budget_below_the_total_makes_check_exit_1_naming_total_and_biggest_items() {
    let scratch = Scratch::new();
    let stack = scratch.read("stacks/prod.yaml");
    let total = cost_json(&scratch, "prod")["total_usd"].as_f64().unwrap();
    scratch.write("stacks/prod.yaml", &format!("{stack}cost:\n  budget_monthly_usd: 100\n"));
    let out = scratch.orch().args(["check", "--env", "prod"]).assert().code(1);
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        stdout.starts_with("budget\tcost.budget_monthly_usd\t")
            && stdout.contains(&format!("${total:.2}/month"))
            && stdout.contains("$100.00/month")
            && stdout.contains("db db.t3.small"),
        "{stdout}"
    );
    // `orch up` runs the same check first, so it stops on the budget before touching anything.
    let up = scratch.orch().args(["up", "--env", "prod", "--dry-run"]).assert().code(2);
    let stderr = String::from_utf8_lossy(&up.get_output().stderr).into_owned();
    assert!(stderr.contains("budget at cost.budget_monthly_usd"), "{stderr}");

    scratch.write(
        "stacks/prod.yaml",
        &format!("{stack}cost:\n  budget_monthly_usd: {}\n", total + 1.0),
    );
    scratch.orch().args(["check", "--env", "prod"]).assert().code(0);
}

#[test]
fn the_cost_section_is_validated_strictly() {
    let scratch = Scratch::new();
    let stack = scratch.read("stacks/dev.yaml");
    scratch.write("stacks/dev.yaml", &format!("{stack}cost:\n  requests_per_mont: 5\n"));
    let out = scratch.orch().args(["cost", "--env", "dev"]).assert().code(2);
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("requests_per_mont"));
    scratch.write(
        "stacks/dev.yaml",
        &format!("{stack}cost:\n  gb_out_per_month: -3\n  budget_monthly_usd: 0\n"),
    );
    let out = scratch.orch().args(["cost", "--env", "dev"]).assert().code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("cost.gb_out_per_month") && stderr.contains("cost.budget_monthly_usd"),
        "{stderr}"
    );
    // Assumptions change the usage-driven lines: twice the data out, twice its line.
    scratch.write("stacks/dev.yaml", &format!("{stack}cost:\n  gb_out_per_month: 100\n"));
    let json = cost_json(&scratch, "dev");
    let out_line =
        json["lines"].as_array().unwrap().iter().find(|l| l["kind"] == "transfer").unwrap().clone();
    let rate = prices()["prices"]["transfer.out"]["usd"].as_f64().unwrap();
    assert!((out_line["monthly_usd"].as_f64().unwrap() - 100.0 * rate).abs() < 1e-9, "{out_line}");
}

#[test]
fn docs_cost_section_is_what_orch_cost_prints_now() {
    let scratch = Scratch::new();
    let dir = tempfile::tempdir().unwrap();
    for env in ["dev", "prod"] {
        let json = cost_json(&scratch, env);
        std::fs::write(dir.path().join(format!("{env}.json")), json.to_string()).unwrap();
    }
    let out = std::process::Command::new("python3")
        .arg(repo().join("scripts/cost-doc.py"))
        .args(["--check", "--doc"])
        .arg(repo().join("docs/programs.md"))
        .arg(dir.path().join("dev.json"))
        .arg(dir.path().join("prod.json"))
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "docs/programs.md's cost section is stale: run scripts/cost-doc.sh\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Offer files in the Price List's bulk format for every entry of the committed table, at twice its
/// price behind a free first tier, each beside a decoy of the same usage type and another operation.
fn offers_at_twice_the_table(dir: &std::path::Path) {
    let mut offers = serde_json::Map::new();
    for (i, (key, e)) in prices()["prices"].as_object().unwrap().iter().enumerate() {
        let offer = offers
            .entry(e["offer"].as_str().unwrap())
            .or_insert_with(|| serde_json::json!({"products": {}, "terms": {"OnDemand": {}}}));
        let mut attributes =
            serde_json::json!({"usagetype": e["usagetype"], "location": "EU (Ireland)"});
        let mut add = |sku: String, attributes: Value, tiers: Value| {
            let family = e.get("product_family").cloned().unwrap_or_else(|| "Other".into());
            offer["products"][&sku] =
                serde_json::json!({"sku": sku, "productFamily": family, "attributes": attributes});
            offer["terms"]["OnDemand"][&sku] =
                serde_json::json!({format!("{sku}.T"): {"priceDimensions": tiers}});
        };
        if let Some(op) = e.get("operation") {
            attributes["operation"] = op.clone();
            let mut decoy = attributes.clone();
            decoy["operation"] = "RunInstances:0002".into();
            add(
                format!("d{i}"),
                decoy,
                serde_json::json!({"a": {"beginRange": "0", "pricePerUnit": {"USD": "9.99"}}}),
            );
        }
        let twice = (e["usd"].as_f64().unwrap() * 2.0).to_string();
        let tiers = serde_json::json!({
            "free": {"beginRange": "0", "pricePerUnit": {"USD": "0.0000000000"}},
            "paid": {"beginRange": "1", "pricePerUnit": {"USD": twice}},
        });
        add(format!("p{i}-{key}"), attributes, tiers);
    }
    for (name, offer) in offers {
        std::fs::create_dir_all(dir.join(&name)).unwrap();
        std::fs::write(dir.join(&name).join("index.json"), offer.to_string()).unwrap();
    }
}

#[test]
fn prices_refresh_takes_each_entry_from_the_offer_files_and_stamps_the_date() {
    let dir = tempfile::tempdir().unwrap();
    offers_at_twice_the_table(&dir.path().join("offers"));
    let out = dir.path().join("eu-west-1.json");
    let refresh = |offers: &std::path::Path| {
        std::process::Command::new("python3")
            .arg(repo().join("scripts/prices-refresh.py"))
            .args(["--region", "eu-west-1", "--date", "2030-01-02", "--offers-dir"])
            .arg(offers)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("python3")
    };
    let run = refresh(&dir.path().join("offers"));
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let fresh: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(fresh["taken"], "2030-01-02");
    let old = prices();
    for (key, e) in old["prices"].as_object().unwrap() {
        let now = fresh["prices"][key]["usd"].as_f64().unwrap();
        assert!((now - 2.0 * e["usd"].as_f64().unwrap()).abs() < 1e-12, "{key}: {now}");
    }
    // A product the offer lacks stops the script, naming the entry, and writes nothing.
    std::fs::remove_file(&out).unwrap();
    let ec2 = dir.path().join("offers/AmazonEC2/index.json");
    let text = std::fs::read_to_string(&ec2).unwrap().replace("EU-NatGateway-Hours", "EU-Gone");
    std::fs::write(&ec2, text).unwrap();
    let run = refresh(&dir.path().join("offers"));
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("ec2.nat.hour"));
    assert!(!out.exists());
}
