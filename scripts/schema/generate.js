#!/usr/bin/env node
// Rebuilds ../../schema/aws-native.json, the compact schema `orch check` embeds, from the .d.ts files of
// the pinned @pulumi/aws-native (package.json). For each resource type we use: its inputs (the `<Type>Args`
// interface: name, type, required, enum values, nested objects as named definitions) and its outputs (the
// class's `readonly` members). Run: npm ci --prefix scripts/schema && node scripts/schema/generate.js
"use strict";
const fs = require("fs");
const path = require("path");
const ts = require("typescript");

// Every aws-native resource type the templates in pulumi/ use. Add a token here when a template needs it.
const RESOURCES = [
  "ec2:Vpc", "ec2:Subnet", "ec2:InternetGateway", "ec2:VpcGatewayAttachment", "ec2:RouteTable", "ec2:Route",
  "ec2:SubnetRouteTableAssociation", "ec2:NatGateway", "ec2:Eip", "ec2:VpcEndpoint", "ec2:SecurityGroup",
  "ec2:SecurityGroupIngress", "ec2:SecurityGroupEgress", "ec2:LaunchTemplate",
  "elasticloadbalancingv2:LoadBalancer", "elasticloadbalancingv2:Listener", "elasticloadbalancingv2:ListenerRule",
  "elasticloadbalancingv2:TargetGroup", "iam:Role", "iam:InstanceProfile", "autoscaling:AutoScalingGroup",
  "autoscaling:ScalingPolicy",
  "rds:DbInstance", "rds:DbSubnetGroup", "logs:LogGroup", "cloudwatch:Alarm", "secretsmanager:Secret",
];

const pkgDir = path.join(__dirname, "node_modules", "@pulumi", "aws-native");
const version = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8")).version;
const fileOf = (token) => {
  const [mod, type] = token.split(":");
  return path.join(pkgDir, mod, type[0].toLowerCase() + type.slice(1) + ".d.ts");
};
const program = ts.createProgram(RESOURCES.map(fileOf), { noEmit: true, types: [] });
const checker = program.getTypeChecker();
const defs = {};

function unionOf(parts) {
  if (parts.length === 1) return parts[0];
  if (parts.every((p) => p.type === "string")) {
    if (parts.some((p) => !p.enum)) return { type: "string" };
    return { type: "string", enum: [...new Set(parts.flatMap((p) => p.enum))] };
  }
  return { oneOf: parts };
}

function enumOf(node) {
  const type = checker.getTypeFromTypeNode(node);
  const members = type.isUnion() ? type.types : [type];
  const values = members.filter((t) => t.isLiteral()).map((t) => t.value);
  if (values.length !== members.length || values.length === 0) return null;
  return { type: typeof values[0] === "number" ? "number" : "string", enum: values };
}

function defFor(decl, key, side) {
  if (!defs[key]) {
    defs[key] = {};
    defs[key] = objectOf(decl.members, side);
  }
  return { ref: key };
}

function objectOf(members, side) {
  const properties = {};
  for (const m of members) {
    if (!ts.isPropertySignature(m) && !ts.isPropertyDeclaration(m)) continue;
    if (!m.type) continue;
    const name = m.name.getText();
    const prop = convert(m.type, side);
    if (side === "in" && !m.questionToken) prop.required = true;
    properties[name] = prop;
  }
  return { type: "object", properties };
}

function convert(node, side) {
  switch (node.kind) {
    case ts.SyntaxKind.StringKeyword: return { type: "string" };
    case ts.SyntaxKind.NumberKeyword: return { type: "number" };
    case ts.SyntaxKind.BooleanKeyword: return { type: "boolean" };
    case ts.SyntaxKind.AnyKeyword: case ts.SyntaxKind.UnknownKeyword: return { type: "any" };
    case ts.SyntaxKind.ParenthesizedType: return convert(node.type, side);
    case ts.SyntaxKind.ArrayType: return { type: "array", items: convert(node.elementType, side) };
    case ts.SyntaxKind.LiteralType: {
      const e = enumOf(node);
      return e || { type: "any" };
    }
    case ts.SyntaxKind.UnionType: {
      const parts = node.types.filter((t) => t.kind !== ts.SyntaxKind.UndefinedKeyword &&
        !(t.kind === ts.SyntaxKind.LiteralType && t.literal.kind === ts.SyntaxKind.NullKeyword));
      return unionOf(parts.map((t) => convert(t, side)));
    }
    case ts.SyntaxKind.TypeLiteral: {
      const index = node.members.find(ts.isIndexSignatureDeclaration);
      if (index) return { type: "object", additionalProperties: convert(index.type, side) };
      return objectOf(node.members, side);
    }
    case ts.SyntaxKind.TypeReference: {
      const name = node.typeName.getText();
      if (name === "pulumi.Input" || name === "pulumi.Output" || name === "Promise") return convert(node.typeArguments[0], side);
      if (name === "Array") return { type: "array", items: convert(node.typeArguments[0], side) };
      if (name === "pulumi.ID" || name === "pulumi.URN") return { type: "string" };
      if (name === "Record") return { type: "object", additionalProperties: convert(node.typeArguments[1], side) };
      let sym = checker.getSymbolAtLocation(node.typeName);
      if (sym && sym.flags & ts.SymbolFlags.Alias) sym = checker.getAliasedSymbol(sym);
      const decls = (sym && sym.declarations) || [];
      const decl = decls.find((d) => ts.isInterfaceDeclaration(d)) || decls.find((d) => ts.isTypeAliasDeclaration(d));
      if (decl && ts.isInterfaceDeclaration(decl)) {
        const key = name.replace(/^(inputs|outputs)\./, "").replace(/Args$/, "");
        return defFor(decl, (side === "in" ? "in:" : "out:") + key, side);
      }
      if (decl && ts.isTypeAliasDeclaration(decl)) {
        const e = enumOf(node);
        if (e) return e;
        return convert(decl.type, side);
      }
      throw new Error(`unsupported type reference ${name}`);
    }
    default:
      throw new Error(`unsupported type syntax ${ts.SyntaxKind[node.kind]}: ${node.getText()}`);
  }
}

const resources = {};
for (const token of RESOURCES) {
  const file = program.getSourceFile(fileOf(token));
  if (!file) throw new Error(`no .d.ts for ${token} at ${fileOf(token)}`);
  const typeName = token.split(":")[1];
  let cls, args;
  ts.forEachChild(file, (n) => {
    if (ts.isClassDeclaration(n) && n.name && n.name.text === typeName) cls = n;
    if (ts.isInterfaceDeclaration(n) && n.name.text === typeName + "Args") args = n;
  });
  if (!cls || !args) throw new Error(`${token}: class or Args interface not found`);
  const inputs = objectOf(args.members, "in").properties;
  const outputs = objectOf(cls.members.filter((m) => m.modifiers && m.modifiers.some((x) => x.kind === ts.SyntaxKind.ReadonlyKeyword)), "out").properties;
  resources["aws-native:" + token] = { inputs, outputs };
}

// aws-native has no Route53 RecordSet; the alias record uses the classic provider's aws:route53:Record.
// That package is large, so its one entry is hand-written in extra/ (see the file's "source" field).
const extra = JSON.parse(fs.readFileSync(path.join(__dirname, "extra", "aws-route53-record.json"), "utf8"));
resources["aws:route53:Record"] = { source: extra.source, inputs: extra.inputs, outputs: extra.outputs };

const sorted = (o) => Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
const schema = {
  comment: "Generated by scripts/schema/generate.js from @pulumi/aws-native .d.ts files; do not edit by hand.",
  provider: "aws-native",
  version,
  resources: sorted(resources),
  defs: sorted(defs),
};
const out = path.join(__dirname, "..", "..", "schema", "aws-native.json");
fs.mkdirSync(path.dirname(out), { recursive: true });
// One definition per line: compact, yet diffs stay readable when the pinned version changes.
const lines = ["{"];
lines.push(`"comment": ${JSON.stringify(schema.comment)},`, `"provider": "aws-native",`, `"version": ${JSON.stringify(version)},`);
lines.push(`"resources": {`);
lines.push(Object.entries(schema.resources).map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(",\n"));
lines.push(`},`, `"defs": {`);
lines.push(Object.entries(schema.defs).map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(",\n"));
lines.push(`}`, `}`);
fs.writeFileSync(out, lines.join("\n") + "\n");
console.log(`wrote ${out}: ${Object.keys(resources).length} resource types, ${Object.keys(defs).length} definitions, aws-native ${version}`);
