//! S3 delivery into a local directory, with AWS's key layout and file names:
//!
//! `ROOT/BUCKET[/PREFIX]/AWSLogs/{account}/vpcflowlogs/{region}/YYYY/MM/DD[/HH]/`
//! `{account}_vpcflowlogs_{region}_{fl-id}_{YYYYMMDDTHHmmZ}_{hash}.log.gz`
//!
//! (or the Hive-compatible `aws-account-id=…/aws-service=vpcflowlogs/aws-region=…/
//! year=…/month=…/day=…[/hour=…]/`). A file holds the records of one account and
//! region whose `end` falls in one 5-minute window, the window its name and folder
//! carry. It is published (renamed into place) once the caller's clock passes the end
//! of the window plus `close_delay_secs`, when it reaches `max_file_bytes`, or on
//! `close()`. Records that arrive for a window whose file was already published go
//! into a new file of that window, as AWS may publish several.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use super::gztext::GzTextObject;
use super::parquet::ParquetObject;
use super::publish::Unpublished;
use super::{Sink, SinkStats};
use crate::destination::LogDestination;
use crate::format::LogFormat;
use crate::record::FlowRecord;
use crate::utc::{window_start, UtcTime, WINDOW_SECS};

/// AWS's 75 MB per file.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 75_000_000;

/// `FileFormat` of the EC2 API's `DestinationOptions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    PlainText,
    Parquet,
}

impl FileFormat {
    fn extension(self) -> &'static str {
        match self {
            FileFormat::PlainText => "log.gz",
            FileFormat::Parquet => "log.parquet",
        }
    }
}

#[derive(Clone, Debug)]
pub struct S3DirConfig {
    /// The local directory that stands for S3: buckets are its subdirectories.
    pub root: PathBuf,
    pub destination: LogDestination,
    /// The flow log's ID (`fl-…`), part of every file name.
    pub flow_log_id: String,
    pub format: LogFormat,
    pub file_format: FileFormat,
    /// `DestinationOptions.HiveCompatiblePartitions`.
    pub hive_compatible_partitions: bool,
    /// `DestinationOptions.PerHourPartition`.
    pub per_hour_partition: bool,
    /// A file is cut before its compressed size could pass this.
    pub max_file_bytes: u64,
    /// How long after its window ends a file stays open for late records. Records are
    /// emitted when their aggregation interval ends, up to that interval after `end`.
    pub close_delay_secs: u64,
    /// Gzip level for text files and Parquet pages (0-9).
    pub gzip_level: u32,
}

impl S3DirConfig {
    /// AWS's defaults: plain text, no Hive or hourly partitions, 75 MB files; files
    /// are held 60 s past their window (one Nitro aggregation interval).
    ///
    /// Gzip level 1: deflate dominates the cost of a record, and level 1 keeps a core
    /// above a million records a second where level 6 manages about a third of that,
    /// for files about 1.7 times larger (see `examples/bench_format.rs`).
    pub fn new(root: impl Into<PathBuf>, destination: LogDestination, flow_log_id: &str) -> Self {
        S3DirConfig {
            root: root.into(),
            destination,
            flow_log_id: flow_log_id.to_owned(),
            format: LogFormat::default(),
            file_format: FileFormat::PlainText,
            hive_compatible_partitions: false,
            per_hour_partition: false,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            close_delay_secs: 60,
            gzip_level: 1,
        }
    }
}

/// One file being written: the file's encoding of records, whatever its format.
pub(crate) trait ObjectWriter: Send {
    fn append(&mut self, rec: &FlowRecord) -> io::Result<()>;
    /// An upper bound of the finished file's size if nothing more were appended.
    fn size_bound(&self) -> u64;
    /// Ends the encoding; returns the file and its size.
    fn finish(self: Box<Self>) -> io::Result<(File, u64)>;
}

struct OpenObject {
    account: String,
    region: String,
    window: u64,
    file: Unpublished,
    writer: Box<dyn ObjectWriter>,
    records: u64,
}

pub struct S3DirSink {
    cfg: S3DirConfig,
    open: Vec<OpenObject>,
    /// Numbers every file this sink starts, so two files of one window differ.
    sequence: u64,
    stats: SinkStats,
}

impl S3DirSink {
    pub fn new(cfg: S3DirConfig) -> io::Result<Self> {
        let valid_id = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid_id(&cfg.flow_log_id) {
            return Err(invalid(format!("flow log id `{}` is not like fl-…", cfg.flow_log_id)));
        }
        if cfg.gzip_level > 9 {
            return Err(invalid(format!("gzip level {} is not 0-9", cfg.gzip_level)));
        }
        Ok(S3DirSink { cfg, open: Vec::new(), sequence: 0, stats: SinkStats::default() })
    }

    pub fn config(&self) -> &S3DirConfig {
        &self.cfg
    }

    /// Records written to files that are not yet published.
    pub fn pending_records(&self) -> u64 {
        self.open.iter().map(|o| o.records).sum()
    }

    /// The directory of one account, region and window.
    fn dir(&self, account: &str, region: &str, window: u64) -> PathBuf {
        let mut p = self.cfg.root.join(&self.cfg.destination.bucket);
        if let Some(prefix) = &self.cfg.destination.prefix {
            p.push(prefix);
        }
        p.push("AWSLogs");
        let t = UtcTime::from_unix(window);
        let (y, m, d, h) =
            (format!("{:04}", t.year), format!("{:02}", t.month), format!("{:02}", t.day), format!("{:02}", t.hour));
        if self.cfg.hive_compatible_partitions {
            p.push(format!("aws-account-id={account}"));
            p.push("aws-service=vpcflowlogs");
            p.push(format!("aws-region={region}"));
            p.push(format!("year={y}"));
            p.push(format!("month={m}"));
            p.push(format!("day={d}"));
            if self.cfg.per_hour_partition {
                p.push(format!("hour={h}"));
            }
        } else {
            p.extend([account, "vpcflowlogs", region, &y, &m, &d]);
            if self.cfg.per_hour_partition {
                p.push(h);
            }
        }
        p
    }

    fn file_name(&self, account: &str, region: &str, window: u64, sequence: u64) -> String {
        format!(
            "{account}_vpcflowlogs_{region}_{}_{}_{:08x}.{}",
            self.cfg.flow_log_id,
            UtcTime::from_unix(window).compact(),
            name_hash(&self.cfg.flow_log_id, window, sequence),
            self.cfg.file_format.extension()
        )
    }

    /// The index of the open file for `rec`, opening one if needed.
    fn object_for(&mut self, rec: &FlowRecord) -> io::Result<usize> {
        let window = window_start(rec.end);
        let (account, region) = (&rec.eni.account_id, &rec.eni.region);
        if let Some(i) =
            self.open.iter().position(|o| o.window == window && o.account == *account && o.region == *region)
        {
            return Ok(i);
        }
        // Account and region become path segments.
        if !path_safe(account) || !path_safe(region) {
            return Err(invalid(format!("account `{account}` or region `{region}` is not a path segment")));
        }
        // Never overwrite a published file: another sink (a restart, a config
        // change) may have written this window already.
        let dir = self.dir(account, region, window);
        let dest = loop {
            self.sequence += 1;
            let name = self.file_name(account, region, window, self.sequence);
            if !dir.join(&name).exists() && !dir.join(format!(".{name}.tmp")).exists() {
                break dir.join(name);
            }
        };
        let (file, handle) = Unpublished::create(dest)?;
        let writer: io::Result<Box<dyn ObjectWriter>> = match self.cfg.file_format {
            FileFormat::PlainText => GzTextObject::new(handle, &self.cfg.format, self.cfg.gzip_level)
                .map(|w| Box::new(w) as Box<dyn ObjectWriter>),
            FileFormat::Parquet => ParquetObject::new(handle, &self.cfg.format, self.cfg.gzip_level)
                .map(|w| Box::new(w) as Box<dyn ObjectWriter>),
        };
        let writer = match writer {
            Ok(w) => w,
            Err(e) => {
                file.discard();
                return Err(e);
            }
        };
        self.open.push(OpenObject {
            account: account.clone(),
            region: region.clone(),
            window,
            file,
            writer,
            records: 0,
        });
        Ok(self.open.len() - 1)
    }

    /// Finishes and publishes open file `i`. If it cannot be published, its records
    /// are dropped.
    fn publish(&mut self, i: usize) -> io::Result<()> {
        let obj = self.open.swap_remove(i);
        let placed = match obj.writer.finish() {
            Ok((handle, size)) => obj.file.publish(handle).map(|synced| (size, synced)),
            Err(e) => {
                obj.file.discard();
                Err(e)
            }
        };
        match placed {
            Ok((size, synced)) => {
                self.stats.records += obj.records;
                self.stats.bytes += size;
                self.stats.files += 1;
                // The file is readable in place; only its durability is in doubt.
                synced.inspect_err(|_| self.stats.errors += 1)
            }
            Err(e) => {
                self.stats.errors += 1;
                self.stats.dropped += obj.records;
                Err(e)
            }
        }
    }

    /// Gives up open file `i` after an error; its records are lost.
    fn abandon(&mut self, i: usize) {
        let obj = self.open.swap_remove(i);
        self.stats.dropped += obj.records;
        obj.file.discard();
    }

    /// Publishes every open file matching `due`, returning the first error.
    fn publish_where(&mut self, due: impl Fn(&OpenObject) -> bool) -> io::Result<()> {
        let mut first_err = None;
        let mut i = 0;
        while i < self.open.len() {
            if due(&self.open[i]) {
                if let Err(e) = self.publish(i) {
                    first_err.get_or_insert(e);
                }
            } else {
                i += 1;
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Sink for S3DirSink {
    fn write(&mut self, records: &[FlowRecord]) -> io::Result<()> {
        // On an error the rest of the batch would most likely meet it too (disk full,
        // permissions): drop the rest and let the next batch try again.
        let drop_rest = |stats: &mut SinkStats, from: usize| {
            stats.dropped += (records.len() - from) as u64;
        };
        for (n, rec) in records.iter().enumerate() {
            let i = match self.object_for(rec) {
                Ok(i) => i,
                Err(e) => {
                    self.stats.errors += 1;
                    drop_rest(&mut self.stats, n);
                    return Err(e);
                }
            };
            if let Err(e) = self.open[i].writer.append(rec) {
                self.abandon(i);
                self.stats.errors += 1;
                drop_rest(&mut self.stats, n);
                return Err(e);
            }
            self.open[i].records += 1;
            if self.open[i].writer.size_bound() >= self.cfg.max_file_bytes {
                // `publish` counts its error, and the file's records if it is lost.
                if let Err(e) = self.publish(i) {
                    drop_rest(&mut self.stats, n + 1);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn rotate_if_due(&mut self, now_unix: u64) -> io::Result<()> {
        let delay = self.cfg.close_delay_secs;
        self.publish_where(|o| o.window + WINDOW_SECS + delay <= now_unix)
    }

    /// Files become visible only when complete, so there is nothing to push early.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn close(&mut self) -> io::Result<()> {
        self.publish_where(|_| true)
    }

    fn stats(&self) -> SinkStats {
        self.stats
    }
}

impl Drop for S3DirSink {
    /// Publishes what is open, as `BufWriter` flushes on drop; errors can only be
    /// seen by calling `close()` first.
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// 8 hex digits that tell apart the files of one flow log and window (FNV-1a).
fn name_hash(flow_log_id: &str, window: u64, sequence: u64) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let bytes = flow_log_id.bytes().chain(window.to_le_bytes()).chain(sequence.to_le_bytes());
    for b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

pub(crate) fn path_safe(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;
    use std::fs;
    use std::io::Read;

    fn sink(root: &std::path::Path, dest: &str) -> S3DirSink {
        S3DirSink::new(S3DirConfig::new(root, LogDestination::parse(dest).unwrap(), "fl-1234abcd")).unwrap()
    }

    fn files(root: &std::path::Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        out.sort();
        out
    }

    fn gunzip(path: &std::path::Path) -> String {
        let mut s = String::new();
        flate2::read::GzDecoder::new(fs::File::open(path).unwrap()).read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn aws_key_layout_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path(), "arn:aws:s3:::my-bucket/flows");
        // Ends 2018-06-20 16:24:59, the last second of the AWS example's 16:20 window.
        let rec = testdata::record(1, 1_529_511_700, 1_529_511_899);
        s.write(std::slice::from_ref(&rec)).unwrap();
        assert!(files(dir.path()).iter().all(|f| f.contains("/.") && f.ends_with(".tmp")));
        s.close().unwrap();
        let got = files(dir.path());
        assert_eq!(got.len(), 1);
        let f = &got[0];
        let prefix = "my-bucket/flows/AWSLogs/123456789012/vpcflowlogs/us-east-1/2018/06/20/\
                      123456789012_vpcflowlogs_us-east-1_fl-1234abcd_20180620T1620Z_";
        assert!(f.starts_with(prefix), "{f}");
        let hash = &f[prefix.len()..f.len() - ".log.gz".len()];
        assert!(hash.len() == 8 && hash.chars().all(|c| c.is_ascii_hexdigit()), "{f}");
        let text = gunzip(&dir.path().join(f));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status");
        assert_eq!(lines[1], LogFormat::default().line(&rec));
        assert_eq!(
            s.stats(),
            SinkStats {
                records: 1,
                files: 1,
                bytes: fs::metadata(dir.path().join(f)).unwrap().len(),
                ..Default::default()
            }
        );
    }

    #[test]
    fn hive_and_hourly_partitions() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = S3DirConfig::new(dir.path(), LogDestination::parse("arn:aws:s3:::b-1").unwrap(), "fl-1");
        cfg.hive_compatible_partitions = true;
        cfg.per_hour_partition = true;
        let mut s = S3DirSink::new(cfg.clone()).unwrap();
        s.write(&[testdata::record(1, 1_529_511_700, 1_529_511_750)]).unwrap();
        s.close().unwrap();
        let f = &files(dir.path())[0];
        assert!(f.starts_with("b-1/AWSLogs/aws-account-id=123456789012/aws-service=vpcflowlogs/aws-region=us-east-1/year=2018/month=06/day=20/hour=16/123456789012_vpcflowlogs_us-east-1_fl-1_20180620T1620Z_"), "{f}");

        let dir = tempfile::tempdir().unwrap();
        cfg.root = dir.path().into();
        cfg.hive_compatible_partitions = false;
        let mut s = S3DirSink::new(cfg).unwrap();
        s.write(&[testdata::record(1, 1_529_511_700, 1_529_511_750)]).unwrap();
        s.close().unwrap();
        assert!(files(dir.path())[0].starts_with("b-1/AWSLogs/123456789012/vpcflowlogs/us-east-1/2018/06/20/16/"));
    }

    #[test]
    fn groups_by_account_region_and_window_and_rotates_on_the_callers_clock() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path(), "arn:aws:s3:::bucket");
        let w = 1_529_511_600; // a window start
        let other = testdata::eni("eni-0b", "210987654321", "eu-west-1");
        let mut recs = vec![
            testdata::record(1, w + 10, w + 20),
            testdata::record(2, w + 200, w + 299),
            testdata::record(3, w + 250, w + 300), // next window
        ];
        let mut r = testdata::record(4, w + 5, w + 6);
        r.eni = other;
        recs.push(r);
        s.write(&recs).unwrap();
        assert_eq!(s.pending_records(), 4);
        // Window w closes at w + 300 + 60 s.
        s.rotate_if_due(w + 359).unwrap();
        assert_eq!(s.stats().files, 0);
        s.rotate_if_due(w + 360).unwrap();
        assert_eq!((s.stats().files, s.stats().records), (2, 3));
        // A late record for window w opens a second file of that window.
        s.write(&[testdata::record(5, w + 100, w + 120)]).unwrap();
        s.rotate_if_due(w + 700).unwrap();
        assert_eq!((s.stats().files, s.stats().records, s.pending_records()), (4, 5, 0));
        let names = files(dir.path());
        assert_eq!(names.len(), 4);
        assert_eq!(names.iter().filter(|n| n.contains("_20180620T1620Z_")).count(), 3);
        assert_eq!(names.iter().filter(|n| n.contains("_20180620T1625Z_")).count(), 1);
        assert_eq!(
            names.iter().filter(|n| n.starts_with("bucket/AWSLogs/210987654321/vpcflowlogs/eu-west-1/")).count(),
            1
        );
        let total: usize = names.iter().map(|n| gunzip(&dir.path().join(n)).lines().count() - 1).sum();
        assert_eq!(total, 5);
    }

    #[test]
    fn cuts_files_at_the_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = S3DirConfig::new(dir.path(), LogDestination::parse("arn:aws:s3:::bucket").unwrap(), "fl-1");
        cfg.max_file_bytes = 400 * 1024;
        cfg.gzip_level = 1;
        let mut s = S3DirSink::new(cfg).unwrap();
        let recs: Vec<FlowRecord> = (0..60_000).map(|i| testdata::noisy_record(i, 1_529_511_700)).collect();
        s.write(&recs).unwrap();
        s.close().unwrap();
        let names = files(dir.path());
        assert!(names.len() >= 2, "{names:?}");
        let mut lines = 0;
        for n in &names {
            let p = dir.path().join(n);
            assert!(fs::metadata(&p).unwrap().len() <= 400 * 1024);
            lines += gunzip(&p).lines().count() - 1;
        }
        assert_eq!(lines, 60_000);
        assert_eq!(s.stats().records, 60_000);
    }

    #[test]
    fn errors_are_counted_and_retried() {
        let dir = tempfile::tempdir().unwrap();
        // The bucket directory is a file, so nothing can be created under it.
        fs::write(dir.path().join("bucket"), b"").unwrap();
        let mut s = sink(dir.path(), "arn:aws:s3:::bucket");
        let recs =
            [testdata::record(1, 1_529_511_700, 1_529_511_750), testdata::record(2, 1_529_511_700, 1_529_511_750)];
        assert!(s.write(&recs).is_err());
        assert_eq!((s.stats().errors, s.stats().dropped, s.stats().records), (1, 2, 0));
        fs::remove_file(dir.path().join("bucket")).unwrap();
        s.write(&recs).unwrap();
        s.close().unwrap();
        assert_eq!((s.stats().errors, s.stats().records, s.stats().files), (1, 2, 1));
    }

    #[test]
    fn refuses_ids_that_are_not_file_name_safe() {
        let dest = LogDestination::parse("arn:aws:s3:::bucket").unwrap();
        assert!(S3DirSink::new(S3DirConfig::new("/tmp", dest.clone(), "fl-1/../x")).is_err());
        assert!(S3DirSink::new(S3DirConfig::new("/tmp", dest, "")).is_err());
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path(), "arn:aws:s3:::bucket");
        let mut r = testdata::record(1, 100, 200);
        r.eni = testdata::eni("eni-1", "../../etc", "us-east-1");
        assert!(s.write(&[r]).is_err());
        assert_eq!(s.stats().errors, 1);
    }

    #[test]
    fn dropping_the_sink_publishes_open_files() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = sink(dir.path(), "arn:aws:s3:::bucket");
            s.write(&[testdata::record(1, 1_529_511_700, 1_529_511_750)]).unwrap();
            assert!(files(dir.path())[0].ends_with(".tmp"));
        }
        let names = files(dir.path());
        assert_eq!(names.len(), 1);
        assert!(names[0].ends_with(".log.gz"));
    }

    #[test]
    fn name_hash_differs_per_sequence() {
        assert_ne!(name_hash("fl-1", 300, 1), name_hash("fl-1", 300, 2));
        assert_ne!(name_hash("fl-1", 300, 1), name_hash("fl-2", 300, 1));
        assert_eq!(name_hash("fl-1", 300, 1), name_hash("fl-1", 300, 1));
    }
}
