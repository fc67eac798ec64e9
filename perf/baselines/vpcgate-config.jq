# The vpcgate leg's config: the three-tier scenario (examples/three-tier/config.json)
# with its policy unchanged, plus one rule pair that lets the benchmark's UDP traffic
# (internet client -> web, udp/$port) in, bound to the benchmark's topology.
#
#   jq --arg uplink IF --arg web IF --arg gateway_mac MAC --arg web_mac MAC \
#      --arg router_mac MAC --argjson port 9 --argjson ring 4096 -f vpcgate-config.jq config.json
#
# Only the web ENI sits behind a port (the sink's veth); the bastion, app and db ENIs
# stay in the config without one, so web-sg's reference to bastion-sg resolves exactly
# as in the scenario. The web tier's permissions and the public subnet's NACL are the
# scenario's, so a packet of the benchmark walks the same entries as row 1's would.

.SecurityGroups |= map(
    if .GroupName == "web-sg" then
        .IpPermissions += [{
            IpProtocol: "udp", FromPort: $port, ToPort: $port,
            IpRanges: [{CidrIp: "0.0.0.0/0", Description: "benchmark traffic"}],
            Ipv6Ranges: [], PrefixListIds: [], UserIdGroupPairs: []
        }]
    else . end)
| .NetworkAcls |= map(
    if any(.Tags[]?; .Key == "Name" and .Value == "public") then
        .Entries += [{
            CidrBlock: "0.0.0.0/0", Egress: false, Protocol: "17", RuleAction: "allow",
            RuleNumber: 140, PortRange: {From: $port, To: $port}
        }]
    else . end)
| .NetworkInterfaces |= map(
    if .Description == "web tier" then .MacAddress = $web_mac else . end)
| .FlowLogs = []
| .Appliance = {
    RouterMac: $router_mac,
    Workers: {RingSize: $ring},
    Ports: [
        {Name: "web", Interface: $web,
         NetworkInterfaceIds: [.NetworkInterfaces[] | select(.Description == "web tier") | .NetworkInterfaceId]},
        {Name: "internet", Interface: $uplink, Uplink: true, GatewayMac: $gateway_mac}
    ]
  }
