//! `Filters` of the Describe actions: `[{"Name": "vpc-id", "Values": ["vpc-1", "vpc-2"]}]`.
//! A resource matches when every filter has a value matching one of the filter's
//! values (`*` and `?` are wildcards, as in EC2). `tag:KEY`, `tag-key` and `tag-value`
//! work for every resource with tags.

use serde::Deserialize;

use crate::error::{invalid, Result};
use crate::model::Tag;

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Filter {
    pub name: String,
    #[serde(default)]
    pub values: Vec<String>,
}

/// Refuses filter names the action does not know, as EC2 does.
pub fn check_names(filters: &[Filter], known: &[&str]) -> Result<()> {
    for f in filters {
        let tag = f.name.starts_with("tag:") || f.name == "tag-key" || f.name == "tag-value";
        if !tag && !known.contains(&f.name.as_str()) {
            return Err(invalid(format!("The filter '{}' is invalid", f.name)));
        }
    }
    Ok(())
}

/// Whether a resource passes every filter. `values(name)` lists the resource's values
/// for a (non-tag) filter name; `tags` are its tags.
pub fn matches(filters: &[Filter], tags: &[Tag], values: impl Fn(&str) -> Vec<String>) -> bool {
    filters.iter().all(|f| {
        let have: Vec<String> = if let Some(key) = f.name.strip_prefix("tag:") {
            tags.iter().filter(|t| t.key == key).map(|t| t.value.clone()).collect()
        } else if f.name == "tag-key" {
            tags.iter().map(|t| t.key.clone()).collect()
        } else if f.name == "tag-value" {
            tags.iter().map(|t| t.value.clone()).collect()
        } else {
            values(&f.name)
        };
        have.iter().any(|h| f.values.iter().any(|pattern| wildcard(pattern, h)))
    })
}

/// EC2's filter wildcards: `*` any run of characters, `?` one character, `\\` escapes.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Star,
        One,
        Lit(char),
    }
    let mut toks = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        toks.push(match c {
            '*' => Tok::Star,
            '?' => Tok::One,
            '\\' => Tok::Lit(chars.next().unwrap_or('\\')),
            c => Tok::Lit(c),
        });
    }
    let t: Vec<char> = text.chars().collect();
    // Greedy match, backtracking to the last star.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match toks.get(pi) {
            Some(Tok::Star) => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(Tok::One) => {
                pi += 1;
                ti += 1;
            }
            Some(Tok::Lit(c)) if *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    toks[pi..].iter().all(|t| *t == Tok::Star)
}

/// `"true"`/`"false"` for boolean filters.
pub fn b(v: bool) -> Vec<String> {
    vec![v.to_string()]
}

pub fn s(v: &str) -> Vec<String> {
    vec![v.to_string()]
}

pub fn opt(v: &Option<String>) -> Vec<String> {
    v.iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard("sg-*", "sg-0123"));
        assert!(wildcard("*", ""));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("a?c", "ac"));
        assert!(wildcard("*web*", "my-web-tier"));
        assert!(!wildcard("web", "web2"));
        assert!(wildcard("a\\*", "a*"));
        assert!(!wildcard("a\\*", "ab"));
    }
}
