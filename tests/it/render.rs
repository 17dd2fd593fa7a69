//! `orch render`: the files it writes, its refusals (local target, missing or oversized 404 page), and an
//! insta snapshot of each AWS environment's program.
use crate::support::{repo, Scratch};
use orch::project::Project;

fn rendered(env: &str) -> orch::render::Rendered {
    let project = Project { root: repo() };
    let stack = orch::config::load(&project, env).expect("stack");
    orch::render::render(&project, &stack).expect("render")
}

#[test]
fn render_prod_writes_program_and_stack_config() {
    let scratch = Scratch::new();
    scratch.orch().args(["render", "--env", "prod"]).assert().success();
    let program = scratch.read("build/prod/Pulumi.yaml");
    let config = scratch.read("build/prod/Pulumi.prod.yaml");
    assert!(program.contains("name: orch-prod\nruntime: yaml\n"), "{program}");
    assert!(program.contains("  imageUri:\n    type: string"));
    assert!(program.contains("  hostedZoneId:\n    type: string"));
    assert!(program.contains("natGatewayB:"), "prod has a NAT gateway per zone");
    assert!(config.contains("aws-native:region: eu-west-1"), "{config}");
    // deploy-time values are set by `orch up`, never rendered
    assert!(!config.contains("imageUri") && !config.contains("certificateArn"), "{config}");
}

#[test]
fn dev_shares_one_nat_gateway_and_prod_does_not() {
    let dev = rendered("dev").program;
    assert!(dev.contains("natGatewayA:") && !dev.contains("natGatewayB:"));
    assert!(dev.contains("natGatewayId: ${natGatewayA.natGatewayId}\n"));
    let prod = rendered("prod").program;
    assert!(prod.contains("natGatewayId: ${natGatewayB.natGatewayId}\n"));
}

#[test]
fn program_hash_is_stable_and_tracks_changes() {
    let a = rendered("prod");
    assert_eq!(a.program_hash(), rendered("prod").program_hash());
    assert_eq!(a.program_hash().len(), 64);
    assert_ne!(a.program_hash(), rendered("dev").program_hash());
}

#[test]
fn render_local_exits_2_because_local_has_no_program() {
    let scratch = Scratch::new();
    scratch
        .orch()
        .args(["render", "--env", "local"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("local target, which has no Pulumi program"));
    assert!(!scratch.path().join("build/local").exists());
}

#[test]
fn render_fails_clearly_without_the_404_page() {
    let scratch = Scratch::new();
    std::fs::remove_file(scratch.path().join("app/pages/404-alb.html")).unwrap();
    scratch
        .orch()
        .args(["render", "--env", "dev"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("404-alb.html"));
}

#[test]
fn render_refuses_a_404_page_over_1024_bytes() {
    let scratch = Scratch::new();
    scratch.write("app/pages/404-alb.html", &"x".repeat(1025));
    scratch
        .orch()
        .args(["render", "--env", "dev"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("1025 bytes"));
}

#[test]
fn templates_are_read_from_the_project_at_run_time() {
    let scratch = Scratch::new();
    let path = "pulumi/Pulumi.yaml.hbs";
    scratch.write(
        path,
        &scratch.read(path).replace("runtime: yaml", "runtime: yaml\n# edited by the user"),
    );
    scratch.orch().args(["render", "--env", "dev"]).assert().success();
    assert!(scratch.read("build/dev/Pulumi.yaml").contains("# edited by the user"));
}

#[test]
fn strict_mode_rejects_a_misspelt_template_variable() {
    let scratch = Scratch::new();
    let path = "pulumi/partials/network.hbs";
    scratch.write(path, &scratch.read(path).replace("network.vpcCidr}}", "network.vpcCidrr}}"));
    scratch
        .orch()
        .args(["render", "--env", "dev"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("vpcCidrr"));
}

#[test]
fn snapshot_dev_program() {
    insta::assert_snapshot!("dev_program", rendered("dev").program);
}

#[test]
fn snapshot_prod_program() {
    insta::assert_snapshot!("prod_program", rendered("prod").program);
}

/// The resources of a rendered program, parsed.
fn resources(program: &str) -> serde_yaml::Mapping {
    let doc: serde_yaml::Value = serde_yaml::from_str(program).expect("the program is YAML");
    doc["resources"].as_mapping().cloned().expect("resources")
}

#[test]
fn the_instance_role_gets_session_manager_channels_not_every_ssm_parameter() {
    for env in ["dev", "prod"] {
        let program = rendered(env).program;
        let role = &resources(&program)[&serde_yaml::Value::from("instanceRole")];
        let text = serde_yaml::to_string(role).unwrap();
        assert!(!text.contains("AmazonSSMManagedInstanceCore"), "{text}");
        assert!(!text.contains("ssm:GetParameter"), "{text}");
        for action in ["ssm:UpdateInstanceInformation", "ssmmessages:OpenDataChannel"] {
            assert!(text.contains(action), "{action} in {text}");
        }
        // The ECR statement names this account's repository (the provider's getAccountId), not `*`.
        assert!(text.contains("arn:aws:ecr:eu-west-1:${accountId}:repository/orch-app"), "{text}");
        assert!(!text.contains(":*:repository"), "{text}");
        assert!(program.contains("function: aws-native:index:getAccountId"), "{program}");
    }
}

#[test]
fn the_database_waits_for_its_monitoring_role_and_the_nat_routes() {
    let program = rendered("prod").program;
    let db = &resources(&program)[&serde_yaml::Value::from("db")];
    let depends: Vec<&str> = db["options"]["dependsOn"]
        .as_sequence()
        .expect("dependsOn")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(depends, ["${privateDefaultRouteA}", "${privateDefaultRouteB}"]);
    // The role itself is ordered by the reference to its ARN.
    assert_eq!(db["properties"]["monitoringRoleArn"].as_str(), Some("${dbMonitoringRole.arn}"));
}

#[test]
fn stack_values_reach_the_program_escaped_by_the_one_helper() {
    // Tag values may hold spaces and the characters AWS allows; they go through the `tags` helper,
    // which escapes like `yaml`: the program still parses and says exactly what the stack says.
    let scratch = Scratch::new();
    let text = scratch
        .read("stacks/dev.yaml")
        .replace("  env: dev\n", "  env: dev\n  owner: a b:c/d=e+f@g\n");
    scratch.write("stacks/dev.yaml", &text);
    scratch.orch().args(["render", "--env", "dev"]).assert().success();
    let program = scratch.read("build/dev/Pulumi.yaml");
    let vpc = &resources(&program)[&serde_yaml::Value::from("vpc")];
    let tags = serde_yaml::to_string(&vpc["properties"]["tags"]).unwrap();
    assert!(tags.contains("a b:c/d=e+f@g"), "{tags}");
    // Whole-scalar values are double-quoted by `yaml`: the provider version, for one.
    assert!(program.contains("options: {version: \"1.79.0\"}"), "{program}");
}

#[test]
fn the_drift_workflow_pins_a_pulumi_cli_inside_the_programs_required_range() {
    let workflow = std::fs::read_to_string(repo().join(".github/workflows/drift.yml")).unwrap();
    let pin = workflow
        .lines()
        .find_map(|l| l.trim().strip_prefix("pulumi-version:"))
        .expect("the workflow pins pulumi-version")
        .trim()
        .to_string();
    let version = |v: &str| -> Vec<u32> { v.split('.').map(|n| n.parse().unwrap()).collect() };
    let program = rendered("prod").program;
    let range = program
        .lines()
        .find_map(|l| l.strip_prefix("requiredPulumiVersion: "))
        .unwrap()
        .trim_matches('"');
    let (low, high) = range.split_once(' ').unwrap();
    let (low, high) = (low.strip_prefix(">=").unwrap(), high.strip_prefix('<').unwrap());
    assert!(version(&pin) >= version(low) && version(&pin) < version(high), "{pin} in {range}");
}

/// The SQL the rendered user data feeds psql (the `<<'SQL'` here-document), as the shell sees it.
fn app_role_sql(program: &str) -> String {
    let launch = &resources(program)[&serde_yaml::Value::from("launchTemplate")];
    let script =
        launch["properties"]["launchTemplateData"]["userData"]["fn::toBase64"].as_str().unwrap();
    let start = script.find("<<'SQL'\n").expect("the SQL here-document") + "<<'SQL'\n".len();
    let end = script[start..].find("\nSQL\n").expect("its end") + start;
    script[start..end].to_string()
}

/// psql as `url` with the app role's SQL, `app` its role name and `password` its password.
fn run_app_role_sql(sql: &str, url: &str, app: &str, password: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new("psql")
        .args([url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", &format!("app={app}"), "-f", "-"])
        .env("ORCH_APP_PASSWORD", password)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("psql");
    child.stdin.take().unwrap().write_all(sql.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn the_user_data_gives_the_app_its_own_database_role_with_its_tables_and_nothing_more() {
    let Some(admin) = crate::support::service("ORCH_TEST_PG_ADMIN_URL") else { return };
    let program = rendered("dev").program;
    let sql = app_role_sql(&program);
    // The container is given the app role's secret, never the master's.
    assert!(program.contains("-e DATABASE_SECRET_ARN='${appDbSecret.id}'"), "{program}");
    // As on RDS: a master role with CREATEROLE that is not a superuser owns the database and, in an
    // environment deployed before this change, the app's tables.
    let id = crate::support::unique();
    let (master, app, db) = (format!("m{id}"), format!("a{id}"), format!("d{id}"));
    let psql = |url: &str, command: &str| {
        let out = std::process::Command::new("psql")
            .args([url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA", "-c", command])
            .output()
            .expect("psql");
        assert!(out.status.success(), "{command}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    psql(&admin, &format!("CREATE ROLE {master} LOGIN CREATEROLE PASSWORD 'mpw'"));
    psql(&admin, &format!("CREATE DATABASE {db} OWNER {master}"));
    let base = admin.rsplit_once('/').unwrap().0.rsplit_once('@').unwrap().1.to_string();
    let as_master = format!("postgres://{master}:mpw@{base}/{db}");
    let as_app = format!("postgres://{app}:app-pw-1@{base}/{db}");
    // PostgreSQL 15 revokes CREATE on public from PUBLIC; the database owner grants it.
    psql(&as_master, "CREATE TABLE hits (id text PRIMARY KEY, n bigint)");
    for password in ["app-pw-0", "app-pw-1"] {
        // Twice, as every boot runs it: idempotent, and a new password is installed.
        let out = run_app_role_sql(&sql, &as_master, &app, password);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(psql(&as_app, "SELECT current_user"), app);
    assert_eq!(psql(&as_app, "INSERT INTO hits VALUES ('i', 1) RETURNING n"), "1");
    psql(&as_app, "CREATE TABLE later (x int); ALTER TABLE hits ADD COLUMN zone text");
    let attributes = psql(
        &admin,
        &format!(
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = '{app}'"
        ),
    );
    assert_eq!(attributes, "f|f|f", "the app role holds no administrative attribute");
    psql(&admin, &format!("DROP DATABASE {db}"));
    psql(&admin, &format!("DROP ROLE {app}; DROP ROLE {master}"));
}
