//! A flow log's record format (`LogFormat` in the EC2 API): an ordered list of fields,
//! written `${field} ${field} ...`, and the text rendering of records with it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::field::{Field, Value};
use crate::record::FlowRecord;

/// An ordered, non-empty list of distinct fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFormat {
    fields: Vec<Field>,
    version: u8,
}

/// Why a `${...}` format string was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatError {
    Empty,
    /// A well-formed `${name}` whose name is not a flow-log field.
    UnknownField(String),
    /// The same field twice (a Parquet schema cannot hold two columns of one name).
    DuplicateField(String),
    /// A token that is not exactly `${name}`.
    Malformed(String),
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Empty => f.write_str("Log format is empty: it needs at least one ${field}"),
            FormatError::UnknownField(name) => write!(f, "Unknown field: ${{{name}}}"),
            FormatError::DuplicateField(name) => write!(f, "Duplicate field: ${{{name}}}"),
            FormatError::Malformed(token) => {
                write!(f, "Malformed log format at `{token}`: expected ${{field}}")
            }
        }
    }
}

impl std::error::Error for FormatError {}

impl Default for LogFormat {
    /// The 14 version-2 fields, which is what AWS uses when no format is given.
    fn default() -> Self {
        LogFormat::new(Field::DEFAULT.to_vec()).expect("the default format is valid")
    }
}

impl LogFormat {
    /// A format of the given fields, in order.
    pub fn new(fields: Vec<Field>) -> Result<Self, FormatError> {
        if fields.is_empty() {
            return Err(FormatError::Empty);
        }
        for (i, f) in fields.iter().enumerate() {
            if fields[..i].contains(f) {
                return Err(FormatError::DuplicateField(f.name().to_owned()));
            }
        }
        let version = fields.iter().map(|f| f.version()).max().unwrap_or(2);
        Ok(LogFormat { fields, version })
    }

    /// Parses `${version} ${srcaddr} ...`: fields separated by whitespace.
    pub fn parse(s: &str) -> Result<Self, FormatError> {
        let mut fields = Vec::new();
        for token in s.split_ascii_whitespace() {
            let name = token
                .strip_prefix("${")
                .and_then(|t| t.strip_suffix('}'))
                .filter(|n| !n.is_empty() && !n.contains(['$', '{', '}']))
                .ok_or_else(|| FormatError::Malformed(token.to_owned()))?;
            let field = Field::from_name(name).ok_or_else(|| FormatError::UnknownField(name.to_owned()))?;
            fields.push(field);
        }
        LogFormat::new(fields)
    }

    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// What the `version` field prints: the highest version among the fields.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Appends the header line (field names, space-separated, newline-terminated).
    pub fn write_header(&self, out: &mut Vec<u8>) {
        for (i, f) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(f.name().as_bytes());
        }
        out.push(b'\n');
    }

    /// Appends one record as a newline-terminated line. Allocates nothing once `out`
    /// has grown to a line's size.
    pub fn write_line(&self, rec: &FlowRecord, out: &mut Vec<u8>) {
        for (i, f) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            write_value(f.value(rec, self.version), out);
        }
        out.push(b'\n');
    }

    /// The record as a line without its newline (for tests and one-off use).
    pub fn line(&self, rec: &FlowRecord) -> String {
        let mut out = Vec::with_capacity(128);
        self.write_line(rec, &mut out);
        out.pop();
        String::from_utf8(out).expect("rendered fields are ASCII or UTF-8 strings")
    }
}

impl fmt::Display for LogFormat {
    /// The `${...}` form, which [`LogFormat::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "${{{}}}", field.name())?;
        }
        Ok(())
    }
}

impl std::str::FromStr for LogFormat {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LogFormat::parse(s)
    }
}

/// Appends one value's text token.
///
/// Tokens are a few bytes long, so they are copied by iterator rather than with
/// `extend_from_slice`, whose `memcpy` call costs more than such a copy.
#[inline(always)]
pub(crate) fn write_value(v: Value<'_>, out: &mut Vec<u8>) {
    match v {
        Value::Absent => out.push(b'-'),
        Value::Int(n) => out.extend(itoa::Buffer::new().format(n).bytes()),
        Value::Str("") => out.push(b'-'),
        Value::Str(s) => write_token(s.as_bytes(), out),
        Value::Ip(ip) => write_ip(ip, out),
    }
}

/// A string field as one token: a space or line break inside it (from a badly named
/// resource) would shift every later field or forge a record, so such bytes become
/// `_`.
#[inline]
fn write_token(s: &[u8], out: &mut Vec<u8>) {
    let unsafe_byte = |b: u8| b <= b' ' || b == 0x7f;
    // A fold rather than `any`: no early exit, so the check vectorises.
    if s.iter().fold(false, |bad, &b| bad | unsafe_byte(b)) {
        out.extend(s.iter().map(|&b| if unsafe_byte(b) { b'_' } else { b }));
    } else {
        out.extend_from_slice(s);
    }
}

/// Addresses by hand: `Display` goes through the formatting machinery, which costs
/// several times the digits themselves. The output is `Display`'s (RFC 5952 for IPv6).
#[inline]
fn write_ip(ip: IpAddr, out: &mut Vec<u8>) {
    match ip {
        IpAddr::V4(v4) => write_ipv4(v4, out),
        IpAddr::V6(v6) => write_ipv6(v6, out),
    }
}

#[inline]
fn write_ipv4(v4: Ipv4Addr, out: &mut Vec<u8>) {
    let [a, b, c, d] = v4.octets();
    write_octet(a, out);
    for n in [b, c, d] {
        out.push(b'.');
        write_octet(n, out);
    }
}

fn write_ipv6(v6: Ipv6Addr, out: &mut Vec<u8>) {
    if let Some(v4) = v6.to_ipv4_mapped() {
        out.extend_from_slice(b"::ffff:");
        return write_ipv4(v4, out);
    }
    let segments = v6.segments();
    // The first longest run of two or more zero groups is written `::`.
    let (mut best, mut best_len, mut run_len) = (0, 0, 0);
    for (i, &g) in segments.iter().enumerate() {
        run_len = if g == 0 { run_len + 1 } else { 0 };
        if run_len > best_len {
            (best, best_len) = (i + 1 - run_len, run_len);
        }
    }
    let groups = |gs: &[u16], out: &mut Vec<u8>| {
        for (i, &g) in gs.iter().enumerate() {
            if i > 0 {
                out.push(b':');
            }
            write_hex_group(g, out);
        }
    };
    if best_len >= 2 {
        groups(&segments[..best], out);
        out.extend_from_slice(b"::");
        groups(&segments[best + best_len..], out);
    } else {
        groups(&segments, out);
    }
}

/// Lowercase hex without leading zeros.
#[inline]
fn write_hex_group(g: u16, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (16 - g.leading_zeros()).div_ceil(4).max(1);
    for shift in (0..digits).rev() {
        out.push(HEX[usize::from((g >> (4 * shift)) & 0xf)]);
    }
}

#[inline]
fn write_octet(n: u8, out: &mut Vec<u8>) {
    if n >= 100 {
        out.push(b'0' + n / 100);
    }
    if n >= 10 {
        out.push(b'0' + n / 10 % 10);
    }
    out.push(b'0' + n % 10);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Action, AwsService, EniMeta, FlowDirection, FlowRecord, LogStatus, Traffic};
    use std::sync::Arc;

    fn eni() -> Arc<EniMeta> {
        Arc::new(EniMeta {
            interface_id: "eni-1235b8ca123456789".into(),
            account_id: "123456789010".into(),
            vpc_id: "vpc-abcdefab012345678".into(),
            subnet_id: "subnet-aaaaaaaa012345678".into(),
            instance_id: Some("i-01234567890123456".into()),
            region: "us-east-1".into(),
            az_id: Some("use1-az4".into()),
            primary_ipv4: Some("10.0.0.62".parse().unwrap()),
        })
    }

    fn accept() -> FlowRecord {
        FlowRecord {
            eni: eni(),
            start: 1566848875,
            end: 1566848933,
            log_status: LogStatus::Ok,
            traffic: Some(Traffic {
                srcaddr: "52.213.180.42".parse().unwrap(),
                dstaddr: "10.0.0.62".parse().unwrap(),
                pkt_srcaddr: "52.213.180.42".parse().unwrap(),
                pkt_dstaddr: "10.0.0.62".parse().unwrap(),
                srcport: 43416,
                dstport: 5001,
                protocol: 6,
                packets: 8,
                bytes: 568,
                action: Action::Accept,
                tcp_flags: Some(19),
                direction: FlowDirection::Ingress,
                traffic_path: None,
                pkt_src_aws_service: Some(AwsService::Ec2),
                pkt_dst_aws_service: None,
            }),
        }
    }

    fn status_only(log_status: LogStatus) -> FlowRecord {
        FlowRecord { eni: eni(), start: 1431280876, end: 1431280934, log_status, traffic: None }
    }

    fn fmt(s: &str) -> LogFormat {
        LogFormat::parse(s).unwrap()
    }

    fn braced(names: &str) -> String {
        names.split(' ').map(|n| format!("${{{n}}}")).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn default_format_is_the_14_v2_fields() {
        let f = LogFormat::default();
        assert_eq!(f.fields(), &Field::DEFAULT);
        assert_eq!(f.version(), 2);
        let mut h = Vec::new();
        f.write_header(&mut h);
        assert_eq!(
            h,
            b"version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n"
        );
        assert_eq!(LogFormat::parse(&f.to_string()).unwrap(), f);
    }

    #[test]
    fn default_record_matches_aws_layout() {
        assert_eq!(
            LogFormat::default().line(&accept()),
            "2 123456789010 eni-1235b8ca123456789 52.213.180.42 10.0.0.62 43416 5001 6 8 568 1566848875 1566848933 ACCEPT OK"
        );
    }

    #[test]
    fn nodata_and_skipdata_print_dashes() {
        let f = LogFormat::default();
        assert_eq!(
            f.line(&status_only(LogStatus::NoData)),
            "2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA"
        );
        assert_eq!(
            f.line(&status_only(LogStatus::SkipData)),
            "2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - SKIPDATA"
        );
    }

    #[test]
    fn version_is_the_highest_chosen() {
        assert_eq!(fmt("${srcaddr}").version(), 2);
        assert_eq!(fmt("${version} ${tcp-flags}").version(), 3);
        assert_eq!(fmt("${version} ${az-id} ${srcaddr}").version(), 4);
        assert_eq!(fmt("${traffic-path} ${version}").version(), 5);
        assert_eq!(fmt("${version} ${ecs-task-id}").version(), 7);
        assert_eq!(fmt("${version} ${reject-reason}").version(), 8);
        assert!(fmt("${version} ${flow-direction}").line(&accept()).starts_with("5 "));
    }

    #[test]
    fn v3_to_v8_fields_render() {
        let f = fmt(&braced(
            "version vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr region az-id \
             sublocation-type sublocation-id pkt-src-aws-service pkt-dst-aws-service flow-direction \
             traffic-path ecs-cluster-name ecs-task-id reject-reason",
        ));
        assert_eq!(
            f.line(&accept()),
            "8 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 19 IPv4 \
             52.213.180.42 10.0.0.62 us-east-1 use1-az4 - - EC2 - ingress - - - -"
        );
        // The ENI's fields still print in a NODATA record; traffic fields do not.
        assert_eq!(
            f.line(&status_only(LogStatus::NoData)),
            "8 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 - - - - \
             us-east-1 use1-az4 - - - - - - - - -"
        );
    }

    #[test]
    fn ipv6_egress_record() {
        let mut r = accept();
        let t = r.traffic.as_mut().unwrap();
        t.srcaddr = "2001:db8::1".parse().unwrap();
        t.dstaddr = "2600:1f18:0:0::2a".parse().unwrap();
        t.pkt_srcaddr = t.srcaddr;
        t.pkt_dstaddr = t.dstaddr;
        t.direction = FlowDirection::Egress;
        t.traffic_path = Some(8);
        t.action = Action::Reject;
        t.tcp_flags = None;
        let f = fmt("${srcaddr} ${dstaddr} ${type} ${action} ${tcp-flags} ${flow-direction} ${traffic-path}");
        assert_eq!(f.line(&r), "2001:db8::1 2600:1f18::2a IPv6 REJECT - egress 8");
    }

    #[test]
    fn whitespace_in_a_field_cannot_split_or_forge_records() {
        let mut r = accept();
        let mut meta = (*r.eni).clone();
        meta.account_id = "1234 5678".into();
        meta.interface_id = "eni-1\n2 123456789010 eni-x".into();
        r.eni = Arc::new(meta);
        let line = LogFormat::default().line(&r);
        assert_eq!(line.split(' ').count(), 14, "{line}");
        assert!(line.starts_with("2 1234_5678 eni-1_2_123456789010_eni-x "), "{line}");
    }

    #[test]
    fn addresses_print_as_display_prints_them() {
        let mut out = Vec::new();
        let mut check = |ip: IpAddr| {
            out.clear();
            write_ip(ip, &mut out);
            assert_eq!(std::str::from_utf8(&out).unwrap(), ip.to_string());
        };
        for s in [
            "::",
            "::1",
            "1::",
            "2001:db8::1",
            "2001:db8:0:0:1:0:0:1",
            "2001:0:0:1:0:0:0:1",
            "fe80::1:0:0:0",
            "::ffff:10.0.0.1",
            "::10.0.0.1",
            "64:ff9b::192.0.2.33",
            "1:2:3:4:5:6:7:8",
            "0.0.0.0",
            "255.255.255.255",
            "10.0.100.9",
            "1:0:2:0:3:0:4:0",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            check(s.parse().unwrap());
        }
        // Every pattern of zero and non-zero groups, with assorted digit counts.
        let values = [0x1u16, 0x20, 0x300, 0x4000, 0xabcd, 0xf];
        for mask in 0u32..256 {
            let mut g = [0u16; 8];
            for (i, slot) in g.iter_mut().enumerate() {
                if mask & (1 << i) != 0 {
                    *slot = values[(i + mask as usize) % values.len()];
                }
            }
            check(IpAddr::V6(Ipv6Addr::from(g)));
        }
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..10_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            check(IpAddr::V4(Ipv4Addr::from((x >> 32) as u32)));
        }
    }

    #[test]
    fn missing_instance_prints_dash() {
        let mut r = accept();
        let mut meta = (*r.eni).clone();
        meta.instance_id = None;
        meta.az_id = None;
        r.eni = Arc::new(meta);
        assert_eq!(fmt("${instance-id} ${az-id}").line(&r), "- -");
    }

    #[test]
    fn parse_errors() {
        assert_eq!(LogFormat::parse(""), Err(FormatError::Empty));
        assert_eq!(LogFormat::parse("   \t "), Err(FormatError::Empty));
        let e = LogFormat::parse("${version} ${foo}").unwrap_err();
        assert_eq!(e.to_string(), "Unknown field: ${foo}");
        for bad in ["${version", "version", "${}", "$version}", "${version}${srcaddr}", "${a{b}", "${"] {
            assert!(matches!(LogFormat::parse(bad), Err(FormatError::Malformed(_))), "{bad:?} should be malformed");
        }
        assert_eq!(LogFormat::parse("${srcaddr} ${srcaddr}").unwrap_err().to_string(), "Duplicate field: ${srcaddr}");
        assert_eq!(LogFormat::new(vec![]), Err(FormatError::Empty));
    }

    #[test]
    fn parse_accepts_any_whitespace_between_fields() {
        assert_eq!(fmt("  ${srcaddr}\t${dstaddr}\n").fields(), &[Field::Srcaddr, Field::Dstaddr]);
    }

    /// Elastic's `aws.vpcflow` parsers pick a layout by counting space-separated tokens,
    /// so a record must have exactly one token per field, `-` included.
    #[test]
    fn token_counts_match_the_layouts_siem_parsers_expect() {
        const V2: &str = "version account-id interface-id srcaddr dstaddr srcport dstport protocol \
                          packets bytes start end action log-status";
        let v3_17 = format!("{V2} vpc-id subnet-id instance-id");
        let v3_21 = format!("{v3_17} tcp-flags type pkt-srcaddr pkt-dstaddr");
        let v5_29 = format!(
            "{v3_21} region az-id sublocation-type sublocation-id pkt-src-aws-service \
             pkt-dst-aws-service flow-direction traffic-path"
        );
        // The custom layouts of the AWS documentation examples, which the Filebeat
        // `aws/vpcflow` pipeline dissects by the same token counts (6, 17 and 21).
        let nat_6 = "instance-id interface-id srcaddr dstaddr pkt-srcaddr pkt-dstaddr";
        let tgw_17 = "version interface-id account-id vpc-id subnet-id instance-id srcaddr dstaddr \
                      srcport dstport protocol tcp-flags type pkt-srcaddr pkt-dstaddr action log-status";
        let flags_21 = "version vpc-id subnet-id instance-id interface-id account-id type srcaddr \
                        dstaddr srcport dstport pkt-srcaddr pkt-dstaddr protocol bytes packets start \
                        end action tcp-flags log-status";
        let layouts = [
            (V2.to_owned(), 14),
            (v3_17, 17),
            (v3_21, 21),
            (v5_29, 29),
            (nat_6.to_owned(), 6),
            (tgw_17.to_owned(), 17),
            (flags_21.to_owned(), 21),
        ];
        for (names, count) in layouts {
            let names: Vec<&str> = names.split_ascii_whitespace().collect();
            let f = fmt(&braced(&names.join(" ")));
            let got: Vec<&str> = f.fields().iter().map(|f| f.name()).collect();
            assert_eq!(got, names, "field order");
            let mut header = Vec::new();
            f.write_header(&mut header);
            assert_eq!(String::from_utf8(header).unwrap().trim_end().split(' ').collect::<Vec<_>>(), names);
            for rec in [accept(), status_only(LogStatus::NoData), status_only(LogStatus::SkipData)] {
                let line = f.line(&rec);
                let tokens: Vec<&str> = line.split(' ').collect();
                assert_eq!(tokens.len(), count, "{line}");
                assert!(tokens.iter().all(|t| !t.is_empty()), "{line}");
            }
        }
        // Spot-check the 21-token tcp-flag layout against AWS's own example record.
        let f = fmt(&braced(flags_21));
        let mut rec = accept();
        rec.traffic.as_mut().unwrap().tcp_flags = Some(2);
        assert_eq!(
            f.line(&rec),
            "3 vpc-abcdefab012345678 subnet-aaaaaaaa012345678 i-01234567890123456 \
             eni-1235b8ca123456789 123456789010 IPv4 52.213.180.42 10.0.0.62 43416 5001 \
             52.213.180.42 10.0.0.62 6 568 8 1566848875 1566848933 ACCEPT 2 OK"
        );
    }

    #[test]
    fn write_line_reuses_the_buffer() {
        let f = LogFormat::default();
        let rec = accept();
        let mut out = Vec::with_capacity(4096);
        let ptr = out.as_ptr();
        for _ in 0..20 {
            f.write_line(&rec, &mut out);
        }
        assert_eq!(out.as_ptr(), ptr);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 20);
    }
}
