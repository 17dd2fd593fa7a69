#!/usr/bin/env python3
"""Translate a rendered orch Pulumi YAML program (build/<env>/Pulumi.yaml) into a CloudFormation template
so cfn-lint and checkov can examine it: aws-native tokens `aws-native:svc:Type` become `AWS::Svc::Type`,
camelCase properties become the CloudFormation PascalCase names, `${res.prop}` becomes `Fn::GetAtt`/`Ref`
(or `Fn::Sub` inside a string), config keys become Parameters, and the aws:route53:Record alias becomes an
AWS::Route53::RecordSet; a variable bound to aws-native's getAccountId becomes the AWS::AccountId pseudo
parameter. Only the constructs the templates in pulumi/ use are supported; anything else
fails loudly so the translation never silently drops what the linters should see.

Usage: pulumi2cfn.py build/prod/Pulumi.yaml > build/prod/cloudformation.json
"""
import json
import re
import sys

import yaml

TYPES = {
    "aws-native:ec2:Vpc": "AWS::EC2::VPC",
    "aws-native:secretsmanager:Secret": "AWS::SecretsManager::Secret",
    "aws-native:ec2:Subnet": "AWS::EC2::Subnet",
    "aws-native:ec2:InternetGateway": "AWS::EC2::InternetGateway",
    "aws-native:ec2:VpcGatewayAttachment": "AWS::EC2::VPCGatewayAttachment",
    "aws-native:ec2:RouteTable": "AWS::EC2::RouteTable",
    "aws-native:ec2:Route": "AWS::EC2::Route",
    "aws-native:ec2:SubnetRouteTableAssociation": "AWS::EC2::SubnetRouteTableAssociation",
    "aws-native:ec2:NatGateway": "AWS::EC2::NatGateway",
    "aws-native:ec2:Eip": "AWS::EC2::EIP",
    "aws-native:ec2:VpcEndpoint": "AWS::EC2::VPCEndpoint",
    "aws-native:ec2:SecurityGroup": "AWS::EC2::SecurityGroup",
    "aws-native:ec2:SecurityGroupIngress": "AWS::EC2::SecurityGroupIngress",
    "aws-native:ec2:SecurityGroupEgress": "AWS::EC2::SecurityGroupEgress",
    "aws-native:ec2:LaunchTemplate": "AWS::EC2::LaunchTemplate",
    "aws-native:elasticloadbalancingv2:LoadBalancer": "AWS::ElasticLoadBalancingV2::LoadBalancer",
    "aws-native:elasticloadbalancingv2:Listener": "AWS::ElasticLoadBalancingV2::Listener",
    "aws-native:elasticloadbalancingv2:ListenerRule": "AWS::ElasticLoadBalancingV2::ListenerRule",
    "aws-native:elasticloadbalancingv2:TargetGroup": "AWS::ElasticLoadBalancingV2::TargetGroup",
    "aws-native:iam:Role": "AWS::IAM::Role",
    "aws-native:iam:InstanceProfile": "AWS::IAM::InstanceProfile",
    "aws-native:autoscaling:AutoScalingGroup": "AWS::AutoScaling::AutoScalingGroup",
    "aws-native:autoscaling:ScalingPolicy": "AWS::AutoScaling::ScalingPolicy",
    "aws-native:rds:DbInstance": "AWS::RDS::DBInstance",
    "aws-native:rds:DbSubnetGroup": "AWS::RDS::DBSubnetGroup",
    "aws-native:logs:LogGroup": "AWS::Logs::LogGroup",
    "aws-native:cloudwatch:Alarm": "AWS::CloudWatch::Alarm",
}
# aws-native camelCases the CloudFormation names; these are the ones where un-camelCasing is not just
# upper-casing the first letter (CloudFormation keeps acronyms upper case).
NAMES = {
    "dbInstanceClass": "DBInstanceClass", "dbName": "DBName", "dbSubnetGroupName": "DBSubnetGroupName",
    "dbSubnetGroupDescription": "DBSubnetGroupDescription", "vpcSecurityGroups": "VPCSecurityGroups",
    "multiAz": "MultiAZ", "vpcZoneIdentifier": "VPCZoneIdentifier", "targetGroupArns": "TargetGroupARNs",
    "enableIamDatabaseAuthentication": "EnableIAMDatabaseAuthentication",
    "dnsName": "DNSName", "canonicalHostedZoneId": "CanonicalHostedZoneID",
}
# Values copied verbatim (IAM policy documents are already in their JSON form).
RAW = {"assumeRolePolicyDocument", "policyDocument"}
# Outputs that CloudFormation returns from `Ref` rather than `Fn::GetAtt`.
REF_OUTPUTS = {
    "id", "roleName", "autoScalingGroupName", "dbSubnetGroupName", "logGroupName", "dbInstanceIdentifier",
    "alarmName",
}
# Config keys whose CloudFormation parameter has a type of its own (cfn-lint checks the use).
PARAM_TYPES = {"amiId": "AWS::EC2::Image::Id"}
REF = re.compile(r"\$\{([^}]*)\}")


def pascal(name):
    return NAMES.get(name) or name[:1].upper() + name[1:]


class Translator:
    def __init__(self, program):
        self.program = program
        self.resources = set((program.get("resources") or {}).keys())
        self.params = set((program.get("config") or {}).keys())
        # Variables bound to a provider function CloudFormation has as a pseudo parameter.
        self.pseudo = {}
        for name, body in (program.get("variables") or {}).items():
            invoke = body.get("fn::invoke") if isinstance(body, dict) else None
            if invoke and invoke.get("function") == "aws-native:index:getAccountId":
                self.pseudo[name] = "AWS::AccountId"
            else:
                raise SystemExit(f"pulumi2cfn: unsupported variable {name}")

    def attr(self, ref):
        parts = [p for p in re.split(r"[.\[\]]", ref) if p]
        root, path = parts[0], parts[1:]
        if root in self.params:
            return root, None
        if root in self.pseudo and not path:
            return self.pseudo[root], None
        if root not in self.resources:
            raise SystemExit(f"pulumi2cfn: dangling reference ${{{ref}}}")
        if not path or path == ["id"] or (len(path) == 1 and path[0] in REF_OUTPUTS):
            return root, None
        return root, ".".join(pascal(p) for p in path)

    def string(self, s):
        whole = REF.fullmatch(s)
        if whole:
            root, attr = self.attr(whole.group(1))
            return {"Ref": root} if attr is None else {"Fn::GetAtt": [root, attr]}
        if "${" not in s:
            return s
        def sub(m):
            if m.group(0).startswith("$$"):
                return "${!" + m.group(1) + "}"
            root, attr = self.attr(m.group(1))
            return "${" + root + ("" if attr is None else "." + attr) + "}"
        return {"Fn::Sub": re.sub(r"\$?\$\{([^}]*)\}", sub, s)}

    def value(self, v, raw=False):
        if isinstance(v, str):
            return self.string(v)
        if isinstance(v, list):
            return [self.value(x, raw) for x in v]
        if isinstance(v, dict):
            if len(v) == 1:
                (k, args), = v.items()
                if k.lower().startswith("fn::"):
                    return self.function(k[4:].lower(), args)
            return {(k if raw else pascal(k)): self.value(x, raw or k in RAW) for k, x in v.items()}
        return v

    def function(self, name, args):
        if name == "tobase64":
            return {"Fn::Base64": self.value(args)}
        if name == "select":
            return {"Fn::Select": [args[0], self.value(args[1])]}
        if name == "split":
            return {"Fn::Split": [args[0], self.value(args[1])]}
        if name == "join":
            return {"Fn::Join": [args[0], self.value(args[1])]}
        raise SystemExit(f"pulumi2cfn: unsupported function fn::{name}")

    def resource(self, name, body):
        token = body["type"]
        props = body.get("properties") or {}
        if token == "aws:route53:Record":
            alias = props["aliases"][0]
            out = {"Type": "AWS::Route53::RecordSet", "Properties": {
                "HostedZoneId": self.value(props["zoneId"]), "Name": self.value(props["name"]), "Type": props["type"],
                "AliasTarget": {"DNSName": self.value(alias["name"]), "HostedZoneId": self.value(alias["zoneId"]),
                                "EvaluateTargetHealth": alias["evaluateTargetHealth"]}}}
        elif token in TYPES:
            out = {"Type": TYPES[token], "Properties": self.value(props)}
        else:
            raise SystemExit(f"pulumi2cfn: no CloudFormation type known for {token} (resource {name})")
        depends = (body.get("options") or {}).get("dependsOn") or []
        if depends:
            out["DependsOn"] = [self.attr(d[2:-1])[0] for d in depends]
        return out

    def template(self):
        p = self.program
        return {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Description": p.get("description", p["name"]),
            "Parameters": {k: {"Type": PARAM_TYPES.get(k, "String")} for k in (p.get("config") or {})},
            "Resources": {n: self.resource(n, b) for n, b in p["resources"].items()},
            "Outputs": {k: {"Value": self.value(v)} for k, v in (p.get("outputs") or {}).items()},
        }


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    with open(sys.argv[1]) as f:
        program = yaml.safe_load(f)
    json.dump(Translator(program).template(), sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
