//! Records written through each file sink into a temp dir and read back from the
//! files alone (gunzip and split, a Parquet reader, plain reads) come out as exactly
//! the records that went in, rendered as the format renders them.

#[path = "../examples/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use flowlog::sink::{CloudWatchDirConfig, CloudWatchDirSink, FileFormat, S3DirConfig, S3DirSink};
use flowlog::{FlowRecord, LogDestination, LogFormat, Sink};
use parquet::basic::Compression;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field as PqField;

const START: u64 = 1_711_929_000;

const V5: &str = "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} \
    ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status} \
    ${vpc-id} ${subnet-id} ${instance-id} ${tcp-flags} ${type} ${pkt-srcaddr} ${pkt-dstaddr} \
    ${region} ${az-id} ${sublocation-type} ${sublocation-id} ${pkt-src-aws-service} \
    ${pkt-dst-aws-service} ${flow-direction} ${traffic-path} ${ecs-task-id} ${reject-reason}";

fn batches() -> Vec<(u64, Vec<FlowRecord>)> {
    let enis = common::enis();
    let mut rng = common::Lcg::new(1);
    (0..25)
        .map(|i| {
            let start = START + 60 * i;
            (start + 60, common::interval(&mut rng, &enis, start, i))
        })
        .collect()
}

/// Lines as a multiset: files group records by account, region and window, so the
/// order across files is not the input order.
fn counted<I: IntoIterator<Item = String>>(lines: I) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for l in lines {
        *m.entry(l).or_insert(0) += 1;
    }
    m
}

fn files_under(root: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let name = p.file_name().unwrap().to_str().unwrap();
                assert!(!name.starts_with('.'), "temporary left behind: {}", p.display());
                if name.ends_with(ext) {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

fn write_all(sink: &mut dyn Sink, batches: &[(u64, Vec<FlowRecord>)]) {
    for (now, batch) in batches {
        sink.write(batch).unwrap();
        sink.rotate_if_due(*now).unwrap();
    }
    sink.close().unwrap();
}

fn s3_sink(root: &Path, format: &LogFormat, file_format: FileFormat) -> S3DirSink {
    let dest = LogDestination::parse("arn:aws:s3:::flow-bucket/vpcgate").unwrap();
    let mut cfg = S3DirConfig::new(root, dest, "fl-0123456789abcdef0");
    cfg.format = format.clone();
    cfg.file_format = file_format;
    S3DirSink::new(cfg).unwrap()
}

fn expected(format: &LogFormat, batches: &[(u64, Vec<FlowRecord>)]) -> HashMap<String, usize> {
    counted(batches.iter().flat_map(|(_, b)| b).map(|r| format.line(r)))
}

#[test]
fn gzip_text_files_read_back() {
    for fmt in [LogFormat::default().to_string(), V5.to_owned()] {
        let format = LogFormat::parse(&fmt).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let batches = batches();
        let mut sink = s3_sink(dir.path(), &format, FileFormat::PlainText);
        write_all(&mut sink, &batches);

        let mut lines = Vec::new();
        let files = files_under(dir.path(), ".log.gz");
        assert!(files.len() >= 2 * 5, "one file per account/region and window: {files:?}");
        for f in &files {
            let mut text = String::new();
            GzDecoder::new(fs::File::open(f).unwrap()).read_to_string(&mut text).unwrap();
            let mut it = text.lines();
            // The header names the format's fields, and parses back to it.
            let header = it.next().unwrap();
            let braced: Vec<String> = header.split(' ').map(|n| format!("${{{n}}}")).collect();
            assert_eq!(LogFormat::parse(&braced.join(" ")).unwrap(), format);
            for l in it {
                assert_eq!(l.split(' ').count(), format.fields().len(), "{l}");
                lines.push(l.to_owned());
            }
        }
        assert_eq!(counted(lines), expected(&format, &batches));
        assert_eq!(sink.stats().files as usize, files.len());
    }
}

fn parquet_token(f: &PqField) -> String {
    match f {
        PqField::Null => "-".into(),
        PqField::Int(n) => n.to_string(),
        PqField::Long(n) => n.to_string(),
        PqField::Str(s) => s.clone(),
        other => panic!("unexpected Parquet value {other:?}"),
    }
}

#[test]
fn parquet_files_read_back() {
    let format = LogFormat::parse(V5).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let batches = batches();
    let mut sink = s3_sink(dir.path(), &format, FileFormat::Parquet);
    write_all(&mut sink, &batches);

    let columns: Vec<&str> = format.fields().iter().map(|f| f.column_name()).collect();
    let mut lines = Vec::new();
    for f in files_under(dir.path(), ".log.parquet") {
        let reader = SerializedFileReader::new(fs::File::open(&f).unwrap()).unwrap();
        let meta = reader.metadata();
        let schema = meta.file_metadata().schema_descr();
        let names: Vec<&str> = schema.columns().iter().map(|c| c.name()).collect();
        assert_eq!(names, columns);
        for rg in meta.row_groups() {
            for c in rg.columns() {
                assert!(matches!(c.compression(), Compression::GZIP(_)));
                assert!(c.dictionary_page_offset().is_none());
            }
        }
        for row in reader.get_row_iter(None).unwrap() {
            let row = row.unwrap();
            let tokens: Vec<String> = row.get_column_iter().map(|(_, v)| parquet_token(v)).collect();
            lines.push(tokens.join(" "));
        }
    }
    assert_eq!(counted(lines), expected(&format, &batches));
}

#[test]
fn cloudwatch_streams_read_back() {
    let format = LogFormat::parse(V5).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let batches = batches();
    let mut cfg = CloudWatchDirConfig::new(dir.path(), "/aws/vpc/flow-logs");
    cfg.format = format.clone();
    let mut sink = CloudWatchDirSink::new(cfg).unwrap();
    write_all(&mut sink, &batches);

    let group = dir.path().join("aws/vpc/flow-logs");
    let mut lines = Vec::new();
    for eni in common::enis() {
        let text = fs::read_to_string(group.join(format!("{}-all", eni.interface_id))).unwrap();
        for l in text.lines() {
            // Each stream holds only its ENI's records, in the order they came.
            assert_eq!(l.split(' ').nth(2), Some(eni.interface_id.as_str()));
            lines.push(l.to_owned());
        }
    }
    assert_eq!(counted(lines), expected(&format, &batches));
    assert_eq!(sink.stats().files, 3);
}
