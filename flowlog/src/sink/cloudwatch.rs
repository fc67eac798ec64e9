//! CloudWatch Logs delivery as files for log shippers to tail: one log group is a
//! directory, each ENI's log stream a file `eni-…-all` in it, one record per line, no
//! header. Every batch is appended with one write per stream, and a stream file that
//! fails mid-write is cut back to its last whole line, so a tailer never sees a torn
//! record glued to the next.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use super::publish::sync_dir;
use super::s3dir::path_safe;
use super::{Sink, SinkStats};
use crate::format::LogFormat;
use crate::record::FlowRecord;

#[derive(Clone, Debug)]
pub struct CloudWatchDirConfig {
    pub root: PathBuf,
    /// The log group; `/` separates directories (`/aws/vpc/flowlogs` is allowed).
    pub log_group: String,
    pub format: LogFormat,
    /// Stream files kept open at once; the least recently written are closed first.
    pub max_open_files: usize,
}

impl CloudWatchDirConfig {
    pub fn new(root: impl Into<PathBuf>, log_group: &str) -> Self {
        CloudWatchDirConfig {
            root: root.into(),
            log_group: log_group.to_owned(),
            format: LogFormat::default(),
            max_open_files: 256,
        }
    }
}

struct Stream {
    file: Option<File>,
    /// Length of the file up to its last whole line.
    len: u64,
    /// Lines of the current batch, and how many.
    pending: Vec<u8>,
    pending_records: u64,
    last_used: u64,
}

pub struct CloudWatchDirSink {
    cfg: CloudWatchDirConfig,
    dir: PathBuf,
    streams: HashMap<String, Stream>,
    batch: u64,
    stats: SinkStats,
}

impl CloudWatchDirSink {
    pub fn new(cfg: CloudWatchDirConfig) -> io::Result<Self> {
        let group = cfg.log_group.trim_start_matches('/');
        // CloudWatch allows `#` in group names too.
        let segment_ok = |seg: &str| path_safe(&seg.replace('#', "_"));
        if group.is_empty() || !group.split('/').all(segment_ok) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("log group `{}` is not a relative path of names", cfg.log_group),
            ));
        }
        let dir = cfg.root.join(group);
        Ok(CloudWatchDirSink { cfg, dir, streams: HashMap::new(), batch: 0, stats: SinkStats::default() })
    }

    /// The stream file of an ENI: `eni-…-all`, as AWS names the stream for traffic type ALL.
    pub fn stream_path(&self, interface_id: &str) -> PathBuf {
        self.dir.join(format!("{interface_id}-all"))
    }

    fn open(&mut self, interface_id: &str) -> io::Result<File> {
        fs::create_dir_all(&self.dir)?;
        let path = self.stream_path(interface_id);
        let mut file = OpenOptions::new().create(true).append(true).read(true).open(&path)?;
        let len = whole_lines_len(&mut file)?;
        if len < file.metadata()?.len() {
            file.set_len(len)?;
        }
        if len == 0 {
            // A new stream: make its directory entry durable.
            self.stats.files += 1;
            sync_dir(&self.dir)?;
        }
        if let Some(s) = self.streams.get_mut(interface_id) {
            s.len = len;
        }
        Ok(file)
    }

    /// Appends each stream's pending lines; a failed stream is cut back and reopened
    /// on its next batch.
    fn write_pending(&mut self) -> io::Result<()> {
        let mut first_err = None;
        let ids: Vec<String> =
            self.streams.iter().filter(|(_, s)| !s.pending.is_empty()).map(|(id, _)| id.clone()).collect();
        for id in ids {
            let res = self.append_stream(&id);
            let s = self.streams.get_mut(&id).expect("listed above");
            match res {
                Ok(()) => {
                    self.stats.records += s.pending_records;
                    self.stats.bytes += s.pending.len() as u64;
                    s.len += s.pending.len() as u64;
                }
                Err(e) => {
                    self.stats.errors += 1;
                    self.stats.dropped += s.pending_records;
                    if let Some(f) = s.file.take() {
                        let _ = f.set_len(s.len);
                    }
                    first_err.get_or_insert(e);
                }
            }
            s.pending.clear();
            s.pending_records = 0;
        }
        first_err.map_or(Ok(()), Err)
    }

    fn append_stream(&mut self, id: &str) -> io::Result<()> {
        if self.streams.get(id).is_some_and(|s| s.file.is_none()) {
            let file = self.open(id)?;
            self.streams.get_mut(id).expect("checked").file = Some(file);
        }
        let s = self.streams.get_mut(id).expect("checked");
        let file = s.file.as_mut().expect("opened above");
        file.write_all(&s.pending)
    }

    /// Closes the least recently written streams beyond the open-file budget.
    fn trim_open_files(&mut self) {
        let open = self.streams.values().filter(|s| s.file.is_some()).count();
        if open <= self.cfg.max_open_files {
            return;
        }
        let mut by_age: Vec<(u64, String)> =
            self.streams.iter().filter(|(_, s)| s.file.is_some()).map(|(id, s)| (s.last_used, id.clone())).collect();
        by_age.sort_unstable();
        for (_, id) in by_age.into_iter().take(open - self.cfg.max_open_files) {
            if let Some(s) = self.streams.get_mut(&id) {
                s.file = None;
            }
        }
    }
}

impl Sink for CloudWatchDirSink {
    fn write(&mut self, records: &[FlowRecord]) -> io::Result<()> {
        self.batch += 1;
        let mut bad_ids = 0;
        for rec in records {
            let id = &rec.eni.interface_id;
            // The interface ID becomes a file name.
            if !path_safe(id) {
                bad_ids += 1;
                continue;
            }
            let s = match self.streams.get_mut(id.as_str()) {
                Some(s) => s,
                None => self.streams.entry(id.clone()).or_insert(Stream {
                    file: None,
                    len: 0,
                    pending: Vec::new(),
                    pending_records: 0,
                    last_used: 0,
                }),
            };
            self.cfg.format.write_line(rec, &mut s.pending);
            s.pending_records += 1;
            s.last_used = self.batch;
        }
        let res = self.write_pending();
        self.trim_open_files();
        if bad_ids > 0 {
            self.stats.errors += 1;
            self.stats.dropped += bad_ids;
            res?;
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{bad_ids} records have an interface id that is not a file name"),
            ));
        }
        res
    }

    /// Streams have no files to rotate: every batch is already in them.
    fn rotate_if_due(&mut self, _now_unix: u64) -> io::Result<()> {
        Ok(())
    }

    /// Every write already reaches the files.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn close(&mut self) -> io::Result<()> {
        let mut first_err = None;
        for s in self.streams.values_mut() {
            if let Some(f) = s.file.take() {
                if let Err(e) = f.sync_all() {
                    self.stats.errors += 1;
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn stats(&self) -> SinkStats {
        self.stats
    }
}

/// The length of `file` up to and including its last newline (0 if it has none).
fn whole_lines_len(file: &mut File) -> io::Result<u64> {
    let len = file.metadata()?.len();
    let mut end = len;
    let mut buf = [0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(pos) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + pos as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    #[test]
    fn one_stream_file_per_eni_without_header() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = CloudWatchDirSink::new(CloudWatchDirConfig::new(dir.path(), "/vpc/flow-logs")).unwrap();
        let other = testdata::eni("eni-0b", "123456789012", "us-east-1");
        let mut recs = vec![testdata::record(1, 100, 160), testdata::record(2, 100, 160)];
        let mut r = testdata::record(3, 100, 160);
        r.eni = other;
        recs.push(r);
        s.write(&recs).unwrap();
        s.write(&recs[..1]).unwrap();
        s.close().unwrap();
        let a = fs::read_to_string(dir.path().join("vpc/flow-logs/eni-0a1b2c3d-all")).unwrap();
        let b = fs::read_to_string(dir.path().join("vpc/flow-logs/eni-0b-all")).unwrap();
        let f = LogFormat::default();
        assert_eq!(a, format!("{}\n{}\n{}\n", f.line(&recs[0]), f.line(&recs[1]), f.line(&recs[0])));
        assert_eq!(b, format!("{}\n", f.line(&recs[2])));
        let st = s.stats();
        assert_eq!((st.records, st.files, st.bytes), (4, 2, (a.len() + b.len()) as u64));
    }

    #[test]
    fn reopening_cuts_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let group = dir.path().join("g");
        fs::create_dir_all(&group).unwrap();
        fs::write(group.join("eni-0a1b2c3d-all"), "whole line\ntorn li").unwrap();
        let mut cfg = CloudWatchDirConfig::new(dir.path(), "g");
        cfg.max_open_files = 0; // reopen for every batch
        let mut s = CloudWatchDirSink::new(cfg).unwrap();
        let rec = testdata::record(1, 100, 160);
        s.write(std::slice::from_ref(&rec)).unwrap();
        s.write(std::slice::from_ref(&rec)).unwrap();
        let line = LogFormat::default().line(&rec);
        assert_eq!(
            fs::read_to_string(group.join("eni-0a1b2c3d-all")).unwrap(),
            format!("whole line\n{line}\n{line}\n")
        );
        assert_eq!(s.stats().files, 0);
    }

    #[test]
    fn bad_names_are_refused_or_counted() {
        assert!(CloudWatchDirSink::new(CloudWatchDirConfig::new("/tmp", "a/../b")).is_err());
        assert!(CloudWatchDirSink::new(CloudWatchDirConfig::new("/tmp", "")).is_err());
        let dir = tempfile::tempdir().unwrap();
        let mut s = CloudWatchDirSink::new(CloudWatchDirConfig::new(dir.path(), "g")).unwrap();
        let mut r = testdata::record(1, 100, 160);
        r.eni = testdata::eni("../eni", "1", "r");
        assert!(s.write(&[r, testdata::record(2, 100, 160)]).is_err());
        let st = s.stats();
        assert_eq!((st.records, st.dropped, st.errors), (1, 1, 1));
    }

    #[test]
    fn write_errors_are_counted_and_retried() {
        let dir = tempfile::tempdir().unwrap();
        // The group directory is a file at first.
        fs::write(dir.path().join("g"), b"").unwrap();
        let mut s = CloudWatchDirSink::new(CloudWatchDirConfig::new(dir.path(), "g")).unwrap();
        let rec = testdata::record(1, 100, 160);
        assert!(s.write(std::slice::from_ref(&rec)).is_err());
        assert_eq!((s.stats().errors, s.stats().dropped), (1, 1));
        fs::remove_file(dir.path().join("g")).unwrap();
        s.write(std::slice::from_ref(&rec)).unwrap();
        assert_eq!(s.stats().records, 1);
    }
}
