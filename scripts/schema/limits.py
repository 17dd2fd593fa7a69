#!/usr/bin/env python3
"""Generate schema/aws-limits.json: what AWS refuses, per property, for every resource type of
schema/aws-native.json. `orch check` reads the committed file offline (src/check/limits.rs).

Two sources, each constraint labelled with the one it came from:

* registry -- the CloudFormation registry schemas that pulumi-aws-native is generated from
  (`aws-cloudformation-schema/*.json` in github.com/pulumi/pulumi-aws-native), read from a git clone at
  the tag of the provider version the program pins (`v<version>` of schema/aws-native.json): per
  property `enum`, `minimum`/`maximum`, `minLength`/`maxLength`, `pattern`; per object `required`,
  `dependencies`, `oneOf`/`anyOf` (of required sets) and `additionalProperties: false`.
* cfn-lint -- the same registry schemas as cfn-lint ships them, patched by cfn-lint from the AWS API
  models (e.g. health-check interval 5-300 s). Only the keywords the registry schema lacks are taken,
  plus cfn-lint's lists of EC2 instance types and RDS postgres DB instance classes (all regions).

Run with the project's venv (scripts/install-deps.sh installs cfn-lint there) and a clone of
pulumi-aws-native (no work tree needed):
    .venv/bin/python3 scripts/schema/limits.py --aws-native /path/to/pulumi-aws-native.git \
        > schema/aws-limits.json
`--ref` overrides the tag (e.g. a commit when the clone lacks the tag); the file records the ref and
the commit it resolved to, so a mismatch with the pinned version is visible in review.
"""
import argparse
import json
import os
import subprocess
import sys
from importlib import metadata

import cfnlint.data.schemas.extensions as extensions
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REGION = "us-east-1"
KEYS = ("enum", "minimum", "maximum", "pattern", "minLength", "maxLength")


def resolve(schema, node):
    """Follow local $refs (#/definitions/X)."""
    for _ in range(16):
        ref = node.get("$ref") if isinstance(node, dict) else None
        if not ref or not ref.startswith("#/"):
            return node
        target = schema
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def pulumi_node(native, node):
    """An aws-native schema node with its ref resolved (defs of schema/aws-native.json)."""
    for _ in range(16):
        if isinstance(node, dict) and "ref" in node:
            node = native["defs"].get(node["ref"], {})
        else:
            return node
    return node


def required_sets(alternatives, names):
    """`oneOf`/`anyOf` alternatives that only say which properties are required, as lists of
    aws-native names; None when an alternative says more (not checked)."""
    out = []
    for alt in alternatives:
        if not isinstance(alt, dict) or set(alt) - {"required", "description"}:
            return None
        out.append(sorted(names.get(r.lower(), r) for r in alt.get("required", [])))
    return out


def walk(native, pnode, schema, cnode, path, props, objects, depth=0):
    """Match aws-native properties to CloudFormation properties by name (case-insensitive) and collect
    the constraints of each, with its aws-native path (`a.b[].c`)."""
    if depth > 8:
        return
    pnode = pulumi_node(native, pnode)
    cnode = resolve(schema, cnode)
    if not isinstance(pnode, dict) or not isinstance(cnode, dict):
        return
    if pnode.get("type") == "array" and "items" in pnode:
        walk(native, pnode["items"], schema, cnode.get("items", {}), path + "[]", props, objects, depth + 1)
        return
    constraint = {k: cnode[k] for k in KEYS if k in cnode}
    if constraint and path:
        props[path] = constraint
    pprops = pnode.get("properties") or pnode.get("inputs") or {}
    names = {k.lower(): k for k in pprops}
    cprops = {k.lower(): v for k, v in (cnode.get("properties") or {}).items()}
    if objects is not None and cprops:
        obj = {}
        req = [names[r.lower()] for r in cnode.get("required", []) if r.lower() in names]
        if req:
            obj["required"] = sorted(req)
        deps = {
            names[k.lower()]: sorted(names[d.lower()] for d in v if d.lower() in names)
            for k, v in (cnode.get("dependencies") or {}).items()
            if k.lower() in names and isinstance(v, list)
        }
        if deps:
            obj["dependencies"] = deps
        for kw in ("oneOf", "anyOf"):
            sets = required_sets(cnode.get(kw, []), names)
            if sets:
                obj[kw] = sets
        if cnode.get("additionalProperties") is False:
            obj["additionalProperties"] = False
        if obj:
            objects[path] = obj
    for name, sub in sorted(pprops.items()):
        if name.lower() in cprops:
            child = f"{path}.{name}" if path else name
            walk(native, sub, schema, cprops[name.lower()], child, props, objects, depth + 1)


def ext(*parts):
    with open(os.path.join(os.path.dirname(extensions.__file__), *parts)) as f:
        return json.load(f)


def git(repo, *args):
    return subprocess.run(["git", "--git-dir", repo, *args], check=True, capture_output=True, text=True).stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aws-native", required=True, help="git dir of a pulumi-aws-native clone")
    parser.add_argument("--ref", help="tag or commit (default: v<version of schema/aws-native.json>)")
    args = parser.parse_args()
    with open(os.path.join(ROOT, "schema", "aws-native.json")) as f:
        native = json.load(f)
    ref = args.ref or f"v{native['version']}"
    try:
        commit = git(args.aws_native, "rev-parse", "--verify", f"{ref}^{{commit}}").strip()
    except subprocess.CalledProcessError:
        sys.exit(f"{args.aws_native} has no `{ref}`: fetch the tag of the pinned provider, or pass --ref")
    date = git(args.aws_native, "log", "-1", "--format=%cs", commit).strip()
    types = {t.lower(): t for t in PROVIDER_SCHEMA_MANAGER.get_resource_types(REGION)}
    resources = {}
    for token, body in sorted(native["resources"].items()):
        provider, module, name = token.split(":")
        if provider != "aws-native":
            continue
        file = f"aws-cloudformation-schema/aws-{module}-{name}.json".lower()
        registry = json.loads(git(args.aws_native, "show", f"{commit}:{file}"))
        top = {"properties": body["inputs"]}
        props, objects = {}, {}
        walk(native, top, registry, registry, "", props, objects)
        extra = {}
        cfn = types.get(registry["typeName"].lower())
        if cfn:
            patched = PROVIDER_SCHEMA_MANAGER.get_resource_schema(REGION, cfn).schema
            lint = {}
            walk(native, top, patched, patched, "", lint, None)
            for path, c in lint.items():
                missing = {k: v for k, v in c.items() if k not in props.get(path, {})}
                if missing:
                    extra[path] = missing
        resources[token] = {
            "cloudformation": registry["typeName"],
            "file": os.path.basename(file),
            "registry": props,
            "objects": objects,
            "cfnLint": extra,
        }
    instance_types = sorted(
        {t for region in ext("aws_ec2_instance", "instancetype_enum.json").values() if isinstance(region, dict) for t in region.get("enum", [])}
    )
    classes = set()
    for region in ext("aws_rds_dbinstance", "dbinstanceclass_enum.json").values():
        if not isinstance(region, dict):
            continue
        for rule in region.get("allOf", []):
            if rule.get("if", {}).get("properties", {}).get("Engine", {}).get("const") == "postgres":
                classes.update(rule["then"]["properties"]["DBInstanceClass"]["enum"])
    doc = {
        "comment": "Generated by scripts/schema/limits.py from the CloudFormation registry schemas "
        "(pulumi-aws-native's aws-cloudformation-schema) and cfn-lint's patches and lists; do not edit by hand.",
        "sources": {
            "registry": {
                "repository": "https://github.com/pulumi/pulumi-aws-native",
                "providerVersion": native["version"],
                "ref": ref,
                "commit": commit,
                "date": date,
            },
            "cfn-lint": metadata.version("cfn-lint"),
            "cfnLint": f"cfnlint/data/schemas/providers/{REGION}.json (registry schemas + cfn-lint patches from the AWS API models)",
            "ec2InstanceTypes": "cfnlint/data/schemas/extensions/aws_ec2_instance/instancetype_enum.json (all regions)",
            "rdsPostgresClasses": "cfnlint/data/schemas/extensions/aws_rds_dbinstance/dbinstanceclass_enum.json (engine postgres, all regions)",
        },
        "resources": resources,
        "ec2InstanceTypes": instance_types,
        "rdsPostgresClasses": sorted(classes),
    }
    json.dump(doc, sys.stdout, indent=None, separators=(",", ":"), sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
