#!/usr/bin/env bash
# Self-test of the fake pulumi (tests/fake-pulumi/pulumi) against the behaviours its README
# attributes to pulumi v3.259: runs it in a temporary project folder with a file:// backend and checks
# exit codes, error texts and files. Exits 0 when every check holds; prints each check.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
P="$HERE/pulumi"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
FAILS=0
ok() { echo "ok   - $1"; }
bad() { echo "FAIL - $1"; FAILS=$((FAILS + 1)); }

# run NAME CMD...: runs CMD in the project folder, keeps stdout/stderr/rc in $OUT $ERR $RC.
run() {
    ( cd "$T/proj" && "$@" ) >"$T/out" 2>"$T/err"
    RC=$?
    OUT=$(cat "$T/out")
    ERR=$(cat "$T/err")
}
# expect DESCRIPTION RC [STDERR-SUBSTRING]: checks the last run.
expect() {
    local what=$1 rc=$2 text=${3:-}
    if [ "$RC" != "$rc" ]; then bad "$what (exit $RC, wanted $rc; stderr: $ERR)"; return; fi
    if [ -n "$text" ] && [[ "$ERR" != *"$text"* ]]; then bad "$what (stderr lacks '$text': $ERR)"; return; fi
    ok "$what"
}
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

mkdir -p "$T/proj" "$T/backend"
cat >"$T/proj/Pulumi.yaml" <<'EOF'
name: orch-dev
runtime: yaml
config:
  imageUri:
    type: string
  certificateArn:
    type: string
  logLevel:
    type: string
    default: info
resources:
  vpc:
    type: aws-native:ec2:Vpc
  alb:
    type: aws-native:elasticloadbalancingv2:LoadBalancer
outputs:
  url: https://example.test
  albDnsName: ${alb.dnsName}
  imageDigest: x
  launchTemplateVersion: ${lt.latestVersionNumber}
  logGroupName: ${logGroup.logGroupName}
EOF
printf '# Rendered by orch\nconfig:\n  aws-native:region: eu-west-1\n' >"$T/proj/Pulumi.dev.yaml"
export PULUMI_BACKEND_URL="file://$T/backend"
unset PULUMI_DEBUG_COMMANDS PULUMI_CONFIG_PASSPHRASE PULUMI_CONFIG_PASSPHRASE_FILE PULUMI_SKIP_CONFIRMATIONS \
    PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER FAKE_PULUMI_SCENARIO FAKE_PULUMI_EXIT FAKE_PULUMI_SLEEP
STACKFILE="$T/proj/Pulumi.dev.yaml"

echo "# 7. passphrase provider without a passphrase"
run "$P" stack select --create --non-interactive dev
expect "stack select --create without PULUMI_CONFIG_PASSPHRASE(_FILE) exits 1" 1 \
    "error: could not create secrets manager for new stack: passphrase must be set with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE environment variables"
echo "test-passphrase" >"$T/passfile"
export PULUMI_CONFIG_PASSPHRASE_FILE="$T/passfile"

echo "# 2. stack config in Pulumi.<stack>.yaml"
run "$P" stack select --create --non-interactive dev
expect "stack select --create with PULUMI_CONFIG_PASSPHRASE_FILE" 0
check "encryptionsalt written at creation (v1:<salt>:v1:<nonce>:<ct>)" \
    "grep -Eq '^encryptionsalt: v1:[A-Za-z0-9+/=]+:v1:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$' '$STACKFILE'"
check "the rendered header comment and aws-native:region are kept" \
    "head -1 '$STACKFILE' | grep -q '^# Rendered by orch' && grep -q '^  aws-native:region: eu-west-1' '$STACKFILE'"
SALT=$(grep encryptionsalt "$STACKFILE")
run "$P" stack select --create --non-interactive dev
check "selecting the existing stack leaves the salt alone" "[ \"\$(grep encryptionsalt '$STACKFILE')\" = \"\$SALT\" ]"
unset PULUMI_CONFIG_PASSPHRASE_FILE
export PULUMI_CONFIG_PASSPHRASE=test-passphrase
run "$P" config set-all --stack dev --plaintext imageUri=registry/app@sha256:aaaa --plaintext aws-native:region=eu-west-1
expect "config set-all --plaintext needs no passphrase" 0
run env -u PULUMI_CONFIG_PASSPHRASE "$P" config set --stack dev --secret dbPassword
expect "config set --secret without a passphrase exits 1" 1 \
    "error: passphrase must be set with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE environment variables"
( cd "$T/proj" && printf 'hunter2-secret\n' | "$P" config set --stack dev --secret dbPassword )
check "plain keys are namespaced by the project name" "grep -q '^  orch-dev:imageUri: registry/app@sha256:aaaa' '$STACKFILE'"
check "a namespaced key keeps its namespace" "grep -q '^  aws-native:region: eu-west-1' '$STACKFILE' && ! grep -q 'orch-dev:aws-native' '$STACKFILE'"
check "a secret is a secure: v1:... value" "grep -A1 '^  orch-dev:dbPassword:' '$STACKFILE' | grep -Eq '^    secure: v1:'"
check "the secret's clear text is not in the file" "! grep -q hunter2 '$STACKFILE'"
check "no config in the backend folder" "! grep -rq 'registry/app' '$T/backend'"
run "$P" config get dbPassword --json
check "config get --json decrypts (one trailing newline stripped from stdin)" \
    "python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d==dict(value=\"hunter2-secret\",secret=True), d' '$OUT'"
run "$P" config --json
check "config --json hides the secret's value and shows project defaults" \
    "python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d[\"orch-dev:dbPassword\"]=={\"secret\":True} and d[\"orch-dev:logLevel\"][\"value\"]==\"info\", d' '$OUT'"
run "$P" config get nope
expect "config get of a missing key exits 1" 1 "error: configuration key 'nope' not found for stack 'dev'"

echo "# 3. declared config without a default must have a value"
export PULUMI_DEBUG_COMMANDS=true
run "$P" up --yes --skip-preview --non-interactive --stack dev
expect "up refuses a missing certificateArn" 1 \
    "error: validating stack config: Stack 'dev' is missing configuration value 'certificateArn'"
run "$P" preview --non-interactive --stack dev
expect "preview refuses it too" 1 "error: validating stack config: Stack 'dev' is missing configuration value 'certificateArn'"
run "$P" config set certificateArn arn:aws:acm:eu-west-1:123456789012:certificate/x
expect "config set KEY VALUE" 0

echo "# 1. --event-log only with PULUMI_DEBUG_COMMANDS"
for v in "" 0 false yes; do
    if [ -z "$v" ]; then unset PULUMI_DEBUG_COMMANDS; else export PULUMI_DEBUG_COMMANDS=$v; fi
    run "$P" up --yes --non-interactive --stack dev --event-log "$T/events.jsonl"
    expect "up --event-log with PULUMI_DEBUG_COMMANDS='$v' is an unknown flag" 1 "error: unknown flag: --event-log"
done
for c in "destroy --yes" "refresh --yes" "preview"; do
    unset PULUMI_DEBUG_COMMANDS
    run "$P" $c --stack dev --event-log="$T/events.jsonl"
    expect "$c --event-log=FILE without PULUMI_DEBUG_COMMANDS is an unknown flag" 1 "error: unknown flag: --event-log"
done
check "nothing ran: no event log, no resources" "[ ! -e '$T/events.jsonl' ]"
export PULUMI_DEBUG_COMMANDS=TRUE
run "$P" up --yes --skip-preview --non-interactive --stack dev --event-log "$T/events.jsonl"
expect "up --event-log with PULUMI_DEBUG_COMMANDS=TRUE runs" 0
check "the event log has a prelude and a succeeded summary" \
    "head -1 '$T/events.jsonl' | grep -q preludeEvent && tail -1 '$T/events.jsonl' | grep -q '\"result\": \"succeeded\"'"
export PULUMI_DEBUG_COMMANDS=1

echo "# 5. outputs are the program's outputs"
run "$P" stack output --json --stack dev
check "stack output --json has exactly the declared keys, with the special and placeholder values" \
    "python3 -c '
import json,sys
d=json.loads(sys.argv[1])
assert sorted(d)==[\"albDnsName\",\"imageDigest\",\"launchTemplateVersion\",\"logGroupName\",\"url\"], d
assert d[\"imageDigest\"]==\"sha256:aaaa\" and d[\"logGroupName\"]==\"fake-logGroupName\" and d[\"launchTemplateVersion\"]==\"1\", d
assert d[\"albDnsName\"].endswith(\".eu-west-1.elb.amazonaws.com\"), d
' '$OUT'"
run "$P" preview --expect-no-changes --stack dev
expect "preview --expect-no-changes with nothing changed" 0
run "$P" config set imageUri registry/app@sha256:bbbb
run "$P" preview --expect-no-changes --stack dev
expect "preview --expect-no-changes after a config change exits 7" 7 \
    "error: no changes were expected for preview but changes were proposed"
run "$P" up --yes --stack dev
run "$P" stack output --json
check "launchTemplateVersion went up with the config change" \
    "python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d[\"launchTemplateVersion\"]==\"2\" and d[\"imageDigest\"]==\"sha256:bbbb\", d' '$OUT'"

echo "# 4. a held lock"
( cd "$T/proj" && FAKE_PULUMI_SLEEP=3 "$P" up --yes --stack dev >/dev/null 2>&1 ) &
HOLDER=$!
for _ in $(seq 50); do
    ls "$T/backend/.pulumi/locks/organization/orch-dev/dev/"*.json >/dev/null 2>&1 && break
    sleep 0.1
done
check "the lock is a file under .pulumi/locks/organization/<project>/<stack>/" \
    "ls '$T/backend/.pulumi/locks/organization/orch-dev/dev/'*.json >/dev/null 2>&1"
run "$P" up --yes --stack dev
expect "a second up while the lock is held exits 1" 1 \
    "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with \`pulumi cancel\`."
LINE="  file://$T/backend/.pulumi/locks/organization/orch-dev/dev/"
check "the holder line is '  <lock URL>: created by USER@HOST (pid N) at RFC3339'" \
    "printf '%s\\n' \"\$ERR\" | grep -Eq '^  file://.*/\\.pulumi/locks/organization/orch-dev/dev/[0-9a-f-]{36}\\.json: created by [^@ ]+@[^ ]+ \\(pid [0-9]+\\) at [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}(Z|[+-][0-9]{2}:[0-9]{2})$' && [[ \"\$ERR\" == *\"\$LINE\"* ]]"
wait "$HOLDER"
check "the lock is removed when its holder exits" "[ -z \"\$(ls -A '$T/backend/.pulumi/locks/organization/orch-dev/dev/' 2>/dev/null)\" ]"

echo "# 2b. the stack file lost its encryptionsalt"
cp "$STACKFILE" "$T/stack.bak"
sed -i '/^encryptionsalt:/d' "$STACKFILE"
run "$P" up --yes --stack dev
expect "up creates a new salt, then cannot decrypt the old secret" 1 \
    "error: validating stack config: cipher: message authentication failed"
check "a new, different salt was written" "grep -q '^encryptionsalt:' '$STACKFILE' && [ \"\$(grep encryptionsalt '$STACKFILE')\" != \"\$SALT\" ]"
cp "$T/stack.bak" "$STACKFILE"
sed -i '/^encryptionsalt:/d' "$STACKFILE"
run env PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER=true "$P" config get dbPassword
check "PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER=true restores the stack state's salt" \
    "[ \"\$OUT\" = hunter2-secret ] && [ \"\$(grep encryptionsalt '$STACKFILE')\" = \"\$SALT\" ]"
run env PULUMI_CONFIG_PASSPHRASE=wrong "$P" up --yes --stack dev
expect "a wrong passphrase" 1 "error: getting stack configuration: get stack secrets manager: incorrect passphrase"

echo "# 8. --target and deletion protection (a second project folder, same backend)"
mkdir -p "$T/prot"
write_prot() {
    cat >"$T/prot/Pulumi.yaml" <<EOF
name: orch-prod
runtime: yaml
resources:
  db:
    type: aws-native:rds:DbInstance
    properties:
      deletionProtection: $1
  alb:
    type: aws-native:elasticloadbalancingv2:LoadBalancer
    properties:
      loadBalancerAttributes:
        - key: deletion_protection.enabled
          value: "$1"
  vpc:
    type: aws-native:ec2:Vpc
outputs:
  url: https://example.test
EOF
}
prot() { ( cd "$T/prot" && "$@" ) >"$T/out" 2>"$T/err"; RC=$?; OUT=$(cat "$T/out"); ERR=$(cat "$T/err"); }
state_of() {
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2] in d["resources"], d.get("protection",{}).get(sys.argv[2]))' \
        "$(find "$T/backend" -name 'prod.json' | head -1)" "$1"
}
write_prot true
prot "$P" stack select --create --non-interactive prod
prot "$P" up --yes --stack prod
expect "up of a protected program" 0
prot "$P" destroy --yes --stack prod
expect "destroy fails on resources with deletion protection" 1 "error: destroy failed"
check "the protected resources stay, the rest is deleted" \
    "[ \"\$(state_of db)\" = 'True True' ] && [ \"\$(state_of alb)\" = 'True True' ] && [ \"\$(state_of vpc)\" = 'False None' ]"
prot "$P" up --yes --stack prod
write_prot false
prot "$P" up --yes --stack prod --target 'urn:pulumi:prod::orch-prod::aws-native:ec2:Vpc::nope'
expect "an unknown --target fails" 1 "error: one or more targets could not be found in the stack"
prot "$P" up --yes --stack prod --target 'urn:pulumi:prod::orch-prod::aws-native:rds:DbInstance::db'
expect "up --target the database" 0
check "only the target changed: the database's protection is off, the load balancer's still on" \
    "[ \"\$(state_of db)\" = 'True False' ] && [ \"\$(state_of alb)\" = 'True True' ]"
prot "$P" up --yes --stack prod --target 'urn:pulumi:prod::orch-prod::aws-native:elasticloadbalancingv2:LoadBalancer::alb'
prot "$P" destroy --yes --stack prod
expect "destroy after protection is off" 0
check "nothing is left" "[ \"\$(state_of db)\" = 'False None' ]"

echo
if [ "$FAILS" -eq 0 ]; then echo "selftest: all checks hold"; else echo "selftest: $FAILS check(s) failed"; fi
[ "$FAILS" -eq 0 ]
