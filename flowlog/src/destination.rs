//! `LogDestination` for S3 delivery: `arn:aws:s3:::BUCKET[/PREFIX]`.
//!
//! The bucket and prefix become directories under a local root, so on top of AWS's
//! rules the prefix may not climb out of it (no empty, `.` or `..` segments).

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogDestination {
    pub bucket: String,
    /// The "subfolder", without leading or trailing `/`.
    pub prefix: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationError {
    pub destination: String,
    pub reason: &'static str,
}

impl fmt::Display for DestinationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Invalid LogDestination `{}`: {} (expected arn:aws:s3:::BUCKET[/PREFIX])",
            self.destination, self.reason
        )
    }
}

impl std::error::Error for DestinationError {}

impl LogDestination {
    pub fn parse(arn: &str) -> Result<Self, DestinationError> {
        let err = |reason| DestinationError { destination: arn.to_owned(), reason };
        let rest = ["arn:aws:s3:::", "arn:aws-cn:s3:::", "arn:aws-us-gov:s3:::"]
            .iter()
            .find_map(|p| arn.strip_prefix(p))
            .ok_or_else(|| err("not an S3 bucket ARN"))?;
        let (bucket, prefix) = match rest.split_once('/') {
            Some((b, p)) => (b, Some(p.strip_suffix('/').unwrap_or(p))),
            None => (rest, None),
        };
        if !valid_bucket(bucket) {
            return Err(err("bucket names are 3-63 lowercase letters, digits, dots and hyphens, \
                 starting and ending with a letter or digit"));
        }
        let prefix = match prefix {
            None | Some("") => None,
            Some(p) => {
                if p.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
                    return Err(err("the prefix has an empty, `.` or `..` segment"));
                }
                if p.split('/').any(|seg| seg == "AWSLogs") {
                    return Err(err("AWSLogs cannot be used as a prefix folder"));
                }
                if p.chars().any(|c| c.is_control() || c == '\\') {
                    return Err(err("the prefix has a control character or backslash"));
                }
                Some(p.to_owned())
            }
        };
        Ok(LogDestination { bucket: bucket.to_owned(), prefix })
    }
}

impl std::str::FromStr for LogDestination {
    type Err = DestinationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LogDestination::parse(s)
    }
}

impl fmt::Display for LogDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "arn:aws:s3:::{}", self.bucket)?;
        match &self.prefix {
            Some(p) => write!(f, "/{p}"),
            None => Ok(()),
        }
    }
}

fn valid_bucket(b: &str) -> bool {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&b.len())
        && b.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge_ok(b.chars().next())
        && edge_ok(b.chars().last())
        && !b.contains("..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_and_prefix() {
        let d = LogDestination::parse("arn:aws:s3:::my-bucket").unwrap();
        assert_eq!((d.bucket.as_str(), d.prefix), ("my-bucket", None));
        let d = LogDestination::parse("arn:aws:s3:::my-bucket/flow/logs/").unwrap();
        assert_eq!(d.bucket, "my-bucket");
        assert_eq!(d.prefix.as_deref(), Some("flow/logs"));
        assert_eq!(d.to_string(), "arn:aws:s3:::my-bucket/flow/logs");
        assert_eq!(LogDestination::parse("arn:aws:s3:::b.c-d/").unwrap().prefix, None);
        assert!(LogDestination::parse("arn:aws-us-gov:s3:::gov-bucket").is_ok());
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "my-bucket",
            "s3://my-bucket/prefix",
            "arn:aws:logs:us-east-1:123456789012:log-group:x",
            "arn:aws:s3:::",
            "arn:aws:s3:::ab",
            "arn:aws:s3:::My-Bucket",
            "arn:aws:s3:::-bucket",
            "arn:aws:s3:::bucket_1",
            "arn:aws:s3:::a..b",
            "arn:aws:s3:::bucket/../etc",
            "arn:aws:s3:::bucket/a//b",
            "arn:aws:s3:::bucket/./a",
            "arn:aws:s3:::bucket/AWSLogs",
        ] {
            let e = LogDestination::parse(bad).unwrap_err();
            assert!(e.to_string().starts_with("Invalid LogDestination"), "{bad}: {e}");
        }
        let long = format!("arn:aws:s3:::{}", "a".repeat(64));
        assert!(LogDestination::parse(&long).is_err());
    }
}
