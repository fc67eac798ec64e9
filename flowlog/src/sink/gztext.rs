//! One plain-text S3 object: a header line and one line per record, gzip-compressed.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use flate2::write::GzEncoder;
use flate2::Compression;

use super::counting::Counting;
use super::s3dir::ObjectWriter;
use crate::format::LogFormat;
use crate::record::FlowRecord;

/// Lines are rendered into one buffer and handed to the compressor this many bytes at
/// a time, which costs far less than a compressor call per line.
const LINE_BATCH: usize = 64 * 1024;

/// Compressed output the compressor may still hold: zlib buffers up to one deflate
/// block (16K symbols at the default memory level) before it emits anything.
const COMPRESSOR_SLACK: u64 = 128 * 1024;

pub(crate) struct GzTextObject {
    gz: GzEncoder<Counting<BufWriter<File>>>,
    format: LogFormat,
    lines: Vec<u8>,
}

impl GzTextObject {
    pub(crate) fn new(file: File, format: &LogFormat, level: u32) -> io::Result<Self> {
        let inner = Counting::new(BufWriter::with_capacity(256 * 1024, file));
        let mut obj = GzTextObject {
            gz: GzEncoder::new(inner, Compression::new(level)),
            format: format.clone(),
            lines: Vec::with_capacity(LINE_BATCH + 4096),
        };
        format.write_header(&mut obj.lines);
        Ok(obj)
    }

    fn drain_lines(&mut self) -> io::Result<()> {
        let res = self.gz.write_all(&self.lines);
        self.lines.clear();
        res
    }
}

impl ObjectWriter for GzTextObject {
    fn append(&mut self, rec: &FlowRecord) -> io::Result<()> {
        self.format.write_line(rec, &mut self.lines);
        if self.lines.len() >= LINE_BATCH {
            self.drain_lines()?;
        }
        Ok(())
    }

    fn size_bound(&self) -> u64 {
        // Text never compresses to more than itself plus a few bytes per block.
        self.gz.get_ref().count() + COMPRESSOR_SLACK + self.lines.len() as u64
    }

    fn finish(mut self: Box<Self>) -> io::Result<(File, u64)> {
        self.drain_lines()?;
        let counting = self.gz.finish()?;
        let size = counting.count();
        let file = counting.into_inner().into_inner().map_err(|e| e.into_error())?;
        Ok((file, size))
    }
}
