"""moto round trip: documents printed by `aws ec2 describe-*` (boto3 against moto's
in-process mock EC2, no network) are imported into a running `vpcgated` with
`vpcgate import`, exported with `vpcgate export`, and the rules come back the same:
ids, protocols, ports, CIDRs, group references, descriptions, NACL entries and
associations, interfaces' groups and addresses. A second import of the export changes
nothing.

moto 5.2.5 prints MAC addresses for its interfaces (the test adds one only if an
interface lacks it) but leaves out the IcmpTypeCode of ICMP NACL entries, which EC2
prints: the test puts it back from the request that created the entry. The describe outputs have no appliance section: the running
daemon's `Appliance` is kept (that is what `vpcgate import` does without one).

Binaries: $VPCGATE_BIN_DIR, else the newest of target/release and target/debug,
else `cargo build -p mgmt --bins`.
"""

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[2]


def binaries():
    if os.environ.get("VPCGATE_BIN_DIR"):
        d = Path(os.environ["VPCGATE_BIN_DIR"])
        return d / "vpcgate", d / "vpcgated"
    found = [ROOT / "target" / p for p in ("release", "debug") if (ROOT / "target" / p / "vpcgated").exists()]
    if not found:
        subprocess.run(["cargo", "build", "-q", "-p", "mgmt", "--bins"], cwd=ROOT, check=True)
        found = [ROOT / "target" / "debug"]
    d = max(found, key=lambda p: (p / "vpcgated").stat().st_mtime)
    return d / "vpcgate", d / "vpcgated"


@pytest.fixture
def daemon(tmp_path):
    vpcgate, vpcgated = binaries()
    initial = tmp_path / "initial.json"
    initial.write_text(json.dumps({"Appliance": {"Region": "us-east-1"}}))
    sock = tmp_path / "api.sock"
    proc = subprocess.Popen(
        [str(vpcgated), "--config", str(initial), "--state-dir", str(tmp_path / "state"), "--socket", str(sock), "--no-dataplane"],
        stdout=subprocess.DEVNULL,
        env={**os.environ, "VPCGATE_LOG": "error"},
    )
    deadline = time.time() + 20
    while True:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(sock))
            break
        except OSError:
            assert proc.poll() is None, "vpcgated exited"
            assert time.time() < deadline, "vpcgated did not start"
            time.sleep(0.02)

    def cli(*args, check=True):
        r = subprocess.run([str(vpcgate), *args, "--socket", str(sock)], capture_output=True, text=True)
        if check:
            assert r.returncode == 0, f"vpcgate {args}: {r.stderr}"
        return r

    yield cli
    proc.terminate()
    proc.wait(timeout=10)


def build_with_moto():
    """A VPC with IPv6, two subnets, three groups with rules (CIDRs, IPv6, group
    references, ICMP, descriptions), a custom NACL with entries associated with a
    subnet, and two interfaces; returns the describe outputs, as printed."""
    ec2 = boto3.client("ec2", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16", AmazonProvidedIpv6CidrBlock=True)["Vpc"]["VpcId"]
    v6 = ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"]
    v6_subnet = v6.replace("::/56", "::/64")
    s1 = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24", Ipv6CidrBlock=v6_subnet)["Subnet"]["SubnetId"]
    s2 = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.2.0/24")["Subnet"]["SubnetId"]

    web = ec2.create_security_group(GroupName="web", Description="web tier", VpcId=vpc)["GroupId"]
    app = ec2.create_security_group(GroupName="app", Description="app tier", VpcId=vpc)["GroupId"]
    db = ec2.create_security_group(GroupName="db", Description="db tier", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=web,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
            {
                "IpProtocol": "tcp",
                "FromPort": 443,
                "ToPort": 443,
                "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "HTTPS from anywhere"}],
                "Ipv6Ranges": [{"CidrIpv6": "::/0"}],
            },
            {"IpProtocol": "icmp", "FromPort": 8, "ToPort": -1, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
        ],
    )
    ec2.authorize_security_group_ingress(
        GroupId=app,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "UserIdGroupPairs": [{"GroupId": web, "Description": "from web"}]},
            {"IpProtocol": "udp", "FromPort": 1000, "ToPort": 2000, "IpRanges": [{"CidrIp": "10.20.0.0/16"}]},
        ],
    )
    ec2.authorize_security_group_ingress(
        GroupId=db, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "UserIdGroupPairs": [{"GroupId": app}]}]
    )
    ec2.revoke_security_group_egress(GroupId=db, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    ec2.authorize_security_group_egress(
        GroupId=db, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    )

    acl = ec2.create_network_acl(VpcId=vpc)["NetworkAcl"]["NetworkAclId"]
    entries = [
        dict(RuleNumber=100, Protocol="6", RuleAction="allow", Egress=False, CidrBlock="0.0.0.0/0", PortRange={"From": 443, "To": 443}),
        dict(RuleNumber=110, Protocol="-1", RuleAction="deny", Egress=False, CidrBlock="192.0.2.0/24"),
        dict(RuleNumber=120, Protocol="1", RuleAction="allow", Egress=False, CidrBlock="10.0.0.0/8", IcmpTypeCode={"Type": 3, "Code": 4}),
        dict(RuleNumber=130, Protocol="-1", RuleAction="allow", Egress=False, Ipv6CidrBlock="::/0"),
        dict(RuleNumber=100, Protocol="6", RuleAction="allow", Egress=True, CidrBlock="0.0.0.0/0", PortRange={"From": 1024, "To": 65535}),
        dict(RuleNumber=200, Protocol="17", RuleAction="deny", Egress=True, CidrBlock="198.51.100.0/24", PortRange={"From": 53, "To": 53}),
    ]
    for e in entries:
        ec2.create_network_acl_entry(NetworkAclId=acl, **e)
    default_acl = ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "default", "Values": ["true"]}])
    assoc = [a for a in default_acl["NetworkAcls"][0]["Associations"] if a["SubnetId"] == s2][0]["NetworkAclAssociationId"]
    ec2.replace_network_acl_association(AssociationId=assoc, NetworkAclId=acl)

    ec2.create_network_interface(SubnetId=s1, Groups=[web], PrivateIpAddress="10.20.1.10", Description="web server")
    eni2 = ec2.create_network_interface(
        SubnetId=s2, Groups=[app, db], PrivateIpAddresses=[{"PrivateIpAddress": "10.20.2.20", "Primary": True}, {"PrivateIpAddress": "10.20.2.21", "Primary": False}]
    )["NetworkInterface"]["NetworkInterfaceId"]
    ec2.modify_network_interface_attribute(NetworkInterfaceId=eni2, SourceDestCheck={"Value": False})

    outputs = {"_created_entries": {acl: entries}}
    for key, call in [
        ("Vpcs", ec2.describe_vpcs),
        ("Subnets", ec2.describe_subnets),
        ("SecurityGroups", ec2.describe_security_groups),
        ("SecurityGroupRules", ec2.describe_security_group_rules),
        ("NetworkAcls", ec2.describe_network_acls),
        ("NetworkInterfaces", ec2.describe_network_interfaces),
    ]:
        out = call()
        out.pop("ResponseMetadata", None)
        outputs[key] = json.loads(json.dumps(out, default=str))
    return outputs


def post_process(outputs):
    """What moto's documents lack compared with EC2's: a MAC for any interface that
    has none (moto 5.2.5 prints them), and the IcmpTypeCode of ICMP NACL entries
    (moto 5.2.5 stores but does not print it; EC2 does), restored from the request."""
    created = outputs.pop("_created_entries")
    for i, n in enumerate(outputs["NetworkInterfaces"]["NetworkInterfaces"]):
        n.setdefault("MacAddress", f"02:00:00:00:{i // 256:02x}:{i % 256:02x}")
    for n in outputs["NetworkAcls"]["NetworkAcls"]:
        for e in n["Entries"]:
            if e["Protocol"] == "1" and "IcmpTypeCode" not in e:
                asked = [c for c in created.get(n["NetworkAclId"], []) if (c["RuleNumber"], c["Egress"]) == (e["RuleNumber"], e["Egress"])]
                e["IcmpTypeCode"] = asked[0]["IcmpTypeCode"]
    return outputs


def sg_rules(groups):
    out = set()
    for g in groups:
        for direction, key in (("in", "IpPermissions"), ("out", "IpPermissionsEgress")):
            for p in g[key]:
                ports = (p.get("FromPort"), p.get("ToPort")) if p["IpProtocol"] != "-1" else (None, None)
                for r in p.get("IpRanges", []):
                    out.add((g["GroupId"], direction, p["IpProtocol"], ports, r["CidrIp"], r.get("Description")))
                for r in p.get("Ipv6Ranges", []):
                    out.add((g["GroupId"], direction, p["IpProtocol"], ports, r["CidrIpv6"], r.get("Description")))
                for r in p.get("UserIdGroupPairs", []):
                    out.add((g["GroupId"], direction, p["IpProtocol"], ports, r["GroupId"], r.get("Description")))
    return out


def rule_ids(rules):
    def peer(r):
        return r.get("CidrIpv4") or r.get("CidrIpv6") or r.get("ReferencedGroupInfo", {}).get("GroupId")

    return {
        (r["SecurityGroupRuleId"], r["GroupId"], r["IsEgress"], r["IpProtocol"], r.get("FromPort"), r.get("ToPort"), peer(r))
        for r in rules
    }


def nacl_entries(acls):
    out = set()
    for n in acls:
        for e in n["Entries"]:
            if e["RuleNumber"] >= 32767:  # the `*` deny entries: implicit
                continue
            pr, ic = e.get("PortRange") or {}, e.get("IcmpTypeCode") or {}
            out.add(
                (
                    n["NetworkAclId"],
                    e["RuleNumber"],
                    e["Egress"],
                    e["Protocol"],
                    e["RuleAction"],
                    e.get("CidrBlock"),
                    e.get("Ipv6CidrBlock"),
                    (pr.get("From"), pr.get("To")) if e["Protocol"] in ("6", "17") else None,
                    (ic.get("Type"), ic.get("Code")) if e["Protocol"] == "1" else None,
                )
            )
    return out


def associations(acls):
    return {(a["SubnetId"], n["NetworkAclId"]) for n in acls for a in n["Associations"]}


def interfaces(enis):
    return {
        (
            n["NetworkInterfaceId"],
            n["SubnetId"],
            n["MacAddress"],
            tuple(sorted(g["GroupId"] for g in n["Groups"])),
            tuple(sorted(p["PrivateIpAddress"] for p in n["PrivateIpAddresses"])),
            n["SourceDestCheck"],
        )
        for n in enis
    }


@mock_aws
def test_moto_describe_outputs_import_and_export_with_the_same_rules(daemon, tmp_path):
    outputs = post_process(build_with_moto())
    files = []
    for key, out in outputs.items():
        f = tmp_path / f"{key}.json"
        f.write_text(json.dumps(out, indent=4))
        files.append(str(f))

    dry = daemon("import", "--dry-run", *files)
    assert json.loads(dry.stdout)["DryRun"] is True
    imported = json.loads(daemon("import", *files).stdout)
    assert imported["Return"] is True
    exported = json.loads(daemon("export").stdout)

    sgs = outputs["SecurityGroups"]["SecurityGroups"]
    assert {g["GroupId"] for g in exported["SecurityGroups"]} == {g["GroupId"] for g in sgs}
    assert {(g["GroupId"], g["GroupName"], g["VpcId"]) for g in exported["SecurityGroups"]} == {
        (g["GroupId"], g["GroupName"], g["VpcId"]) for g in sgs
    }
    assert sg_rules(exported["SecurityGroups"]) == sg_rules(sgs)
    assert rule_ids(exported["SecurityGroupRules"]) == rule_ids(outputs["SecurityGroupRules"]["SecurityGroupRules"])

    acls = outputs["NetworkAcls"]["NetworkAcls"]
    assert {n["NetworkAclId"] for n in exported["NetworkAcls"]} == {n["NetworkAclId"] for n in acls}
    assert nacl_entries(exported["NetworkAcls"]) == nacl_entries(acls)
    assert associations(exported["NetworkAcls"]) >= associations(acls)
    explicit = {a["NetworkAclAssociationId"] for n in acls for a in n["Associations"]}
    assert explicit <= {a["NetworkAclAssociationId"] for n in exported["NetworkAcls"] for a in n["Associations"]}

    assert interfaces(exported["NetworkInterfaces"]) == interfaces(outputs["NetworkInterfaces"]["NetworkInterfaces"])
    assert {(v["VpcId"], v["CidrBlock"]) for v in exported["Vpcs"]} == {(v["VpcId"], v["CidrBlock"]) for v in outputs["Vpcs"]["Vpcs"]}
    assert {(s["SubnetId"], s["CidrBlock"]) for s in exported["Subnets"]} == {
        (s["SubnetId"], s["CidrBlock"]) for s in outputs["Subnets"]["Subnets"]
    }

    # The describe verbs print the same as the export.
    described = json.loads(daemon("describe-security-groups").stdout)
    assert sg_rules(described["SecurityGroups"]) == sg_rules(sgs)

    # Import of the export is a fixed point.
    again = tmp_path / "export.json"
    again.write_text(json.dumps(exported))
    daemon("import", str(again))
    assert json.loads(daemon("export").stdout) == exported
