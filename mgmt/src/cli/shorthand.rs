//! The AWS CLI's parameter forms: shorthand (`IpProtocol=tcp,FromPort=22,ToPort=22,
//! IpRanges=[{CidrIp=10.0.0.0/8}]`), JSON (`[{"IpProtocol": "tcp", ...}]`) and
//! `file://PATH`, turned into the API's JSON with the types of the parameter's shape
//! (so `FromPort=22` becomes the number 22). Errors read like the AWS CLI's.

use serde_json::{Map, Number, Value};

/// What a parameter looks like, to type shorthand values and refuse unknown keys.
#[derive(Clone, Debug)]
pub enum Shape {
    Str,
    Int,
    Bool,
    List(Box<Shape>),
    Struct(Vec<(&'static str, Shape)>),
}

fn list(s: Shape) -> Shape {
    Shape::List(Box::new(s))
}

fn strukt(fields: &[(&'static str, Shape)]) -> Shape {
    Shape::Struct(fields.to_vec())
}

pub fn ip_permission() -> Shape {
    use Shape::*;
    strukt(&[
        ("IpProtocol", Str),
        ("FromPort", Int),
        ("ToPort", Int),
        ("IpRanges", list(strukt(&[("CidrIp", Str), ("Description", Str)]))),
        ("Ipv6Ranges", list(strukt(&[("CidrIpv6", Str), ("Description", Str)]))),
        ("PrefixListIds", list(strukt(&[("PrefixListId", Str), ("Description", Str)]))),
        (
            "UserIdGroupPairs",
            list(strukt(&[
                ("Description", Str),
                ("GroupId", Str),
                ("GroupName", Str),
                ("PeeringStatus", Str),
                ("UserId", Str),
                ("VpcId", Str),
                ("VpcPeeringConnectionId", Str),
            ])),
        ),
    ])
}

pub fn filter() -> Shape {
    strukt(&[("Name", Shape::Str), ("Values", list(Shape::Str))])
}

pub fn port_range() -> Shape {
    strukt(&[("From", Shape::Int), ("To", Shape::Int)])
}

pub fn icmp_type_code() -> Shape {
    strukt(&[("Type", Shape::Int), ("Code", Shape::Int)])
}

pub fn conntrack() -> Shape {
    strukt(&[("TcpEstablishedTimeout", Shape::Int), ("UdpStreamTimeout", Shape::Int), ("UdpTimeout", Shape::Int)])
}

pub fn rule_update() -> Shape {
    use Shape::*;
    strukt(&[
        ("SecurityGroupRuleId", Str),
        (
            "SecurityGroupRule",
            strukt(&[
                ("IpProtocol", Str),
                ("FromPort", Int),
                ("ToPort", Int),
                ("CidrIpv4", Str),
                ("CidrIpv6", Str),
                ("PrefixListId", Str),
                ("ReferencedGroupId", Str),
                ("Description", Str),
            ]),
        ),
    ])
}

pub fn tag_specification() -> Shape {
    strukt(&[("ResourceType", Shape::Str), ("Tags", list(strukt(&[("Key", Shape::Str), ("Value", Shape::Str)])))])
}

pub fn destination_options() -> Shape {
    strukt(&[("FileFormat", Shape::Str), ("HiveCompatiblePartitions", Shape::Bool), ("PerHourPartition", Shape::Bool)])
}

pub fn attribute_value() -> Shape {
    strukt(&[("Value", Shape::Str)])
}

/// A parameter that could not be read: the AWS CLI's "Error parsing parameter".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError(pub String);

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One argument of a structure parameter (`--port-range From=80,To=80` or JSON).
pub fn structure(option: &str, arg: &str, shape: &Shape) -> Result<Value, ParamError> {
    let raw = raw_value(option, arg)?;
    coerce(&raw, shape, option)
}

/// The arguments of a list-of-structures parameter (`--ip-permissions A B` where each
/// argument is one structure in shorthand, or a JSON list or object).
pub fn structures(option: &str, args: &[String], item: &Shape) -> Result<Vec<Value>, ParamError> {
    let mut out = Vec::new();
    for arg in args {
        match raw_value(option, arg)? {
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    out.push(coerce(v, item, &format!("{option}[{i}]"))?);
                }
            }
            v => out.push(coerce(&v, item, option)?),
        }
    }
    Ok(out)
}

/// `file://PATH` contents, JSON (starting with `[`, `{` or `"`), or shorthand.
fn raw_value(option: &str, arg: &str) -> Result<Value, ParamError> {
    let text = match arg.strip_prefix("file://") {
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            ParamError(format!("Error parsing parameter '{option}': Unable to load paramfile {arg}: {e}"))
        })?,
        None => arg.to_string(),
    };
    let t = text.trim_start();
    if t.starts_with('[') || t.starts_with('{') || t.starts_with('"') {
        return serde_json::from_str(t).map_err(|e| {
            ParamError(format!("Error parsing parameter '{option}': Invalid JSON: {e}\nJSON received: {t}"))
        });
    }
    parse(&text).map_err(|e| ParamError(format!("Error parsing parameter '{option}': {e}")))
}

// ---------------------------------------------------------------------------------
// The shorthand grammar

/// Parses shorthand into untyped JSON (strings, lists, objects).
pub fn parse(input: &str) -> Result<Value, String> {
    let mut p = Parser { s: input.chars().collect(), i: 0 };
    let v = p.params(None)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.expected("end of input"));
    }
    Ok(Value::Object(v))
}

struct Parser {
    s: Vec<char>,
    i: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.i += 1;
        }
    }

    fn expected(&self, what: &str) -> String {
        let got = self.peek().map_or("end of input".to_string(), |c| format!("'{c}'"));
        let input: String = self.s.iter().collect();
        format!("Expected: {what}, received: {got} for input:\n{input}\n{}^", " ".repeat(self.i))
    }

    fn is_key_char(c: char) -> bool {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/' | '@')
    }

    /// `key=value,key=value` up to `end` (`}`) or the end of input.
    fn params(&mut self, end: Option<char>) -> Result<Map<String, Value>, String> {
        let mut out = Map::new();
        loop {
            self.ws();
            let start = self.i;
            while self.peek().is_some_and(Self::is_key_char) {
                self.i += 1;
            }
            if self.i == start {
                return Err(self.expected("a key"));
            }
            let key: String = self.s[start..self.i].iter().collect();
            self.ws();
            if self.peek() != Some('=') {
                return Err(self.expected("'='"));
            }
            self.i += 1;
            let value = self.value(end.is_none())?;
            if out.insert(key.clone(), value).is_some() {
                return Err(format!("Second instance of key \"{key}\" encountered for input:\n{}", self.text()));
            }
            self.ws();
            match self.peek() {
                None if end.is_none() => return Ok(out),
                Some(',') => self.i += 1,
                Some(c) if Some(c) == end => return Ok(out),
                _ => return Err(self.expected(end.map_or("','".to_string(), |e| format!("',' or '{e}'")).as_str())),
            }
        }
    }

    fn text(&self) -> String {
        self.s.iter().collect()
    }

    fn value(&mut self, top: bool) -> Result<Value, String> {
        self.ws();
        match self.peek() {
            Some('[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.peek() == Some(']') {
                    self.i += 1;
                    return Ok(Value::Array(items));
                }
                loop {
                    self.ws();
                    let item = if self.peek() == Some('{') { self.hash()? } else { self.scalar(false)? };
                    items.push(item);
                    self.ws();
                    match self.peek() {
                        Some(',') => self.i += 1,
                        Some(']') => {
                            self.i += 1;
                            return Ok(Value::Array(items));
                        }
                        _ => return Err(self.expected("',' or ']'")),
                    }
                }
            }
            Some('{') => self.hash(),
            _ => {
                let first = self.scalar(top)?;
                if !top {
                    return Ok(first);
                }
                // At the top level `Values=a,b,c` is a list, until the next `key=`.
                let mut items = vec![first];
                while self.peek() == Some(',') && !self.key_follows(self.i + 1) {
                    self.i += 1;
                    items.push(self.scalar(true)?);
                }
                Ok(if items.len() == 1 { items.remove(0) } else { Value::Array(items) })
            }
        }
    }

    fn key_follows(&self, mut j: usize) -> bool {
        while self.s.get(j).is_some_and(|c| c.is_whitespace()) {
            j += 1;
        }
        let start = j;
        while self.s.get(j).is_some_and(|c| Self::is_key_char(*c)) {
            j += 1;
        }
        j > start && self.s.get(j) == Some(&'=')
    }

    fn hash(&mut self) -> Result<Value, String> {
        self.i += 1; // '{'
        self.ws();
        if self.peek() == Some('}') {
            self.i += 1;
            return Ok(Value::Object(Map::new()));
        }
        let m = self.params(Some('}'))?;
        self.i += 1; // '}'
        Ok(Value::Object(m))
    }

    /// A bare or quoted word. Bare words end at `,` (and `]`/`}` inside brackets).
    fn scalar(&mut self, top: bool) -> Result<Value, String> {
        self.ws();
        if let Some(q @ ('"' | '\'')) = self.peek() {
            self.i += 1;
            let mut out = String::new();
            loop {
                match self.peek() {
                    None => return Err(self.expected(&format!("closing {q}"))),
                    Some('\\') if self.s.get(self.i + 1) == Some(&q) => {
                        out.push(q);
                        self.i += 2;
                    }
                    Some(c) if c == q => {
                        self.i += 1;
                        return Ok(Value::String(out));
                    }
                    Some(c) => {
                        out.push(c);
                        self.i += 1;
                    }
                }
            }
        }
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if c == ',' || (!top && (c == ']' || c == '}')) {
                break;
            }
            if c == '\\' {
                if let Some(&n) = self.s.get(self.i + 1) {
                    out.push(n);
                    self.i += 2;
                    continue;
                }
            }
            if (c == '[' || c == '{') && !top {
                return Err(self.expected("a value"));
            }
            out.push(c);
            self.i += 1;
        }
        Ok(Value::String(out.trim_end().to_string()))
    }
}

// ---------------------------------------------------------------------------------
// Typing

/// Types `v` by `shape` (strings to numbers and booleans, a single value to a list),
/// refusing unknown keys like the AWS CLI's parameter validation.
pub fn coerce(v: &Value, shape: &Shape, path: &str) -> Result<Value, ParamError> {
    let bad = |want: &str| {
        ParamError(format!(
            "Parameter validation failed:\nInvalid type for parameter {path}, value: {v}, valid types: {want}"
        ))
    };
    match shape {
        Shape::Str => match v {
            Value::String(_) => Ok(v.clone()),
            Value::Number(n) => Ok(Value::String(n.to_string())),
            _ => Err(bad("string")),
        },
        Shape::Int => match v {
            Value::Number(n) if n.is_i64() => Ok(v.clone()),
            Value::String(s) => s.trim().parse::<i64>().map(|n| Value::Number(Number::from(n))).map_err(|_| bad("int")),
            _ => Err(bad("int")),
        },
        Shape::Bool => match v {
            Value::Bool(_) => Ok(v.clone()),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            _ => Err(bad("bool")),
        },
        Shape::List(item) => match v {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, x)| coerce(x, item, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            other => Ok(Value::Array(vec![coerce(other, item, &format!("{path}[0]"))?])),
        },
        Shape::Struct(fields) => {
            let Value::Object(m) = v else { return Err(bad("structure")) };
            let mut out = Map::new();
            for (k, x) in m {
                let Some((_, s)) = fields.iter().find(|(name, _)| name == k) else {
                    let names: Vec<&str> = fields.iter().map(|f| f.0).collect();
                    return Err(ParamError(format!(
                        "Parameter validation failed:\nUnknown parameter in {path}: \"{k}\", must be one of: {}",
                        names.join(", ")
                    )));
                };
                out.insert(k.clone(), coerce(x, s, &format!("{path}.{k}"))?);
            }
            Ok(Value::Object(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aws_shorthand_forms() {
        let v = structures(
            "--ip-permissions",
            &["IpProtocol=tcp,FromPort=22,ToPort=22,IpRanges=[{CidrIp=10.0.0.0/8,Description=ssh from office},{CidrIp=192.0.2.0/24}]".into()],
            &ip_permission(),
        )
        .unwrap();
        assert_eq!(
            v,
            vec![json!({"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                 "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": "ssh from office"}, {"CidrIp": "192.0.2.0/24"}]})]
        );
        let f = structures(
            "--filters",
            &["Name=group-id,Values=sg-1,sg-2".into(), "Name=vpc-id,Values=vpc-1".into()],
            &filter(),
        )
        .unwrap();
        assert_eq!(
            f,
            vec![
                json!({"Name": "group-id", "Values": ["sg-1", "sg-2"]}),
                json!({"Name": "vpc-id", "Values": ["vpc-1"]})
            ]
        );
        assert_eq!(structure("--port-range", "From=80,To=81", &port_range()).unwrap(), json!({"From": 80, "To": 81}));
        assert_eq!(
            structure("--icmp-type-code", "Type=-1,Code=-1", &icmp_type_code()).unwrap(),
            json!({"Type": -1, "Code": -1})
        );
        assert_eq!(structure("--x", "Values=[a,\"b,c\"]", &filter()).unwrap(), json!({"Values": ["a", "b,c"]}));
    }

    #[test]
    fn json_form_and_errors() {
        let v = structures(
            "--ip-permissions",
            &[r#"[{"IpProtocol":"udp","FromPort":53,"ToPort":"53"}]"#.into()],
            &ip_permission(),
        )
        .unwrap();
        assert_eq!(v, vec![json!({"IpProtocol": "udp", "FromPort": 53, "ToPort": 53})]);
        for bad in ["IpProtocol", "IpProtocol=tcp,,", "FromPort=x", "Bogus=1", "IpRanges=[{CidrIp=1}", "=1"] {
            let e = structures("--ip-permissions", &[bad.into()], &ip_permission()).unwrap_err();
            assert!(
                e.0.starts_with("Error parsing parameter") || e.0.starts_with("Parameter validation failed"),
                "{bad}: {e}"
            );
        }
    }
}
