//! The AWS CLI's output formats: `json` (4-space indented, nothing for an empty
//! answer), `table` (boxed sections for people) and `text` (tab-separated lines
//! named after their list, for scripts).

use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Table,
    Text,
}

pub fn render(v: &Value, format: Format, title: &str) -> String {
    if v.as_object().is_some_and(Map::is_empty) {
        return String::new();
    }
    match format {
        Format::Json => json(v) + "\n",
        Format::Table => table(v, title),
        Format::Text => text(v),
    }
}

pub fn json(v: &Value) -> String {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, serde_json::ser::PrettyFormatter::with_indent(b"    "));
    v.serialize(&mut ser).expect("JSON values serialise");
    String::from_utf8(out).expect("JSON is UTF-8")
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "True".into() } else { "False".into() }),
        Value::Null => Some("None".into()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------
// text

fn text(v: &Value) -> String {
    let mut out = String::new();
    text_into(v, "", &mut out);
    out
}

fn text_into(v: &Value, name: &str, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let scalars: Vec<String> = keys.iter().filter_map(|k| scalar(&m[*k])).collect();
            if !scalars.is_empty() {
                if !name.is_empty() {
                    out.push_str(&name.to_uppercase());
                    out.push('\t');
                }
                out.push_str(&scalars.join("\t"));
                out.push('\n');
            }
            for k in keys.iter().filter(|k| scalar(&m[**k]).is_none()) {
                text_into(&m[*k], k, out);
            }
        }
        Value::Array(items) => {
            let scalars: Vec<String> = items.iter().filter_map(scalar).collect();
            if !scalars.is_empty() {
                out.push_str(&name.to_uppercase());
                out.push('\t');
                out.push_str(&scalars.join("\t"));
                out.push('\n');
            }
            for item in items.iter().filter(|i| scalar(i).is_none()) {
                text_into(item, name, out);
            }
        }
        other => {
            out.push_str(&scalar(other).unwrap_or_default());
            out.push('\n');
        }
    }
}

// ---------------------------------------------------------------------------------
// table

/// A titled box: key/value rows, then nested boxes.
struct Section {
    title: String,
    rows: Vec<(String, String)>,
    children: Vec<Section>,
}

fn section(title: &str, v: &Value) -> Vec<Section> {
    match v {
        Value::Array(items) => {
            let scalars: Vec<String> = items.iter().filter_map(scalar).collect();
            let mut out = Vec::new();
            if !scalars.is_empty() {
                out.push(Section {
                    title: title.to_string(),
                    rows: scalars.into_iter().map(|s| (s, String::new())).collect(),
                    children: Vec::new(),
                });
            }
            for item in items.iter().filter(|i| scalar(i).is_none()) {
                out.extend(section(title, item));
            }
            out
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let rows = keys.iter().filter_map(|k| scalar(&m[*k]).map(|s| ((*k).clone(), s))).collect();
            let children = keys.iter().filter(|k| scalar(&m[**k]).is_none()).flat_map(|k| section(k, &m[*k])).collect();
            vec![Section { title: title.to_string(), rows, children }]
        }
        other => vec![Section {
            title: title.to_string(),
            rows: vec![(scalar(other).unwrap_or_default(), String::new())],
            children: Vec::new(),
        }],
    }
}

fn table(v: &Value, title: &str) -> String {
    let top = Section { title: title.to_string(), rows: Vec::new(), children: section("", v) };
    // A body that is one untitled section is the top section itself.
    let top = match top.children.as_slice() {
        [only] if only.title.is_empty() => {
            let only = top.children.into_iter().next().expect("one child");
            Section { title: title.to_string(), rows: only.rows, children: only.children }
        }
        _ => top,
    };
    let width = inner_width(&top).max(20);
    let mut out = Vec::new();
    draw(&top, 0, width, &mut out);
    out.join("\n") + "\n"
}

fn key_width(s: &Section) -> usize {
    s.rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0)
}

/// The width a section needs (its own borders included).
fn inner_width(s: &Section) -> usize {
    let kw = key_width(s);
    let rows = s
        .rows
        .iter()
        .map(|(k, v)| if v.is_empty() { k.chars().count() + 4 } else { kw + v.chars().count() + 9 })
        .max()
        .unwrap_or(0);
    let title = s.title.chars().count() + 4;
    let children = s.children.iter().map(|c| inner_width(c) + 2).max().unwrap_or(0);
    rows.max(title).max(children)
}

/// Draws `s` inside `depth` borders on each side; `width` excludes those borders.
fn draw(s: &Section, depth: usize, width: usize, out: &mut Vec<String>) {
    let (l, r) = ("|".repeat(depth), "|".repeat(depth));
    let w = width - 2;
    let rule = format!("{l}+{}+{r}", "-".repeat(w));
    let line = |body: String| format!("{l}|{body}|{r}");
    out.push(if depth == 0 { "-".repeat(width) } else { rule.clone() });
    if !s.title.is_empty() {
        out.push(line(format!("{:^w$}", s.title)));
        out.push(rule.clone());
    }
    let kw = key_width(s);
    for (k, v) in &s.rows {
        if v.is_empty() {
            out.push(line(format!(" {:<iw$} ", k, iw = w - 2)));
        } else {
            let vw = w - kw - 6;
            out.push(line(format!("  {k:<kw$} |  {v:<vw$}")));
        }
    }
    if !s.rows.is_empty() {
        out.push(rule);
    }
    for c in &s.children {
        draw(c, depth + 1, width - 2, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats() {
        let v = json!({"SecurityGroups": [{"GroupId": "sg-1", "GroupName": "web", "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 22}]}]});
        assert!(render(&json!({}), Format::Json, "X").is_empty());
        assert!(json(&v).contains("\n    \"SecurityGroups\""));
        let t = render(&v, Format::Text, "DescribeSecurityGroups");
        assert_eq!(t, "SECURITYGROUPS\tsg-1\tweb\nIPPERMISSIONS\t22\ttcp\n");
        let tab = render(&v, Format::Table, "DescribeSecurityGroups");
        let widths: Vec<usize> = tab.lines().map(|l| l.chars().count()).collect();
        assert!(widths.iter().all(|w| *w == widths[0]), "{tab}");
        assert!(
            tab.contains("DescribeSecurityGroups") && tab.contains("sg-1") && tab.contains("IpPermissions"),
            "{tab}"
        );
    }
}
