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
    scratch.write(path, &scratch.read(path).replace("{{network.vpcCidr}}", "{{network.vpcCidrr}}"));
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
