//! One Parquet S3 object: a column per format field, typed as spec section 4.1 says,
//! named as Athena names them (`account_id`), every column optional (`-` is null).
//!
//! The files are written for the widest set of readers, the pure-Python `parquet`
//! package behind flowlogs-reader included: data pages v1, PLAIN encoding (dictionary
//! encoding off) and GZIP compression.

use std::fs::File;
use std::io::{self, BufWriter};
use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{Compression, GzipLevel, LogicalType, Repetition, Type as PhysicalType};
use parquet::data_type::{ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::properties::{WriterProperties, WriterVersion};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use super::s3dir::ObjectWriter;
use crate::field::{ParquetType, Value};
use crate::format::{write_value, LogFormat};
use crate::record::FlowRecord;

/// DuckDB's row-group size: readers parallelise over row groups.
const ROW_GROUP_ROWS: usize = 122_880;
/// Raw bytes buffered before a row group is written, whatever its row count.
const ROW_GROUP_BYTES: usize = 32 * 1024 * 1024;
/// The footer and page headers, beyond the data itself.
const METADATA_SLACK: u64 = 256 * 1024;

enum Column {
    Int32 {
        values: Vec<i32>,
        defs: Vec<i16>,
    },
    Int64 {
        values: Vec<i64>,
        defs: Vec<i16>,
    },
    /// All the strings of a row group back to back, and where each ends.
    Bytes {
        data: Vec<u8>,
        ends: Vec<usize>,
        defs: Vec<i16>,
    },
}

pub(crate) struct ParquetObject {
    writer: SerializedFileWriter<BufWriter<File>>,
    format: LogFormat,
    columns: Vec<Column>,
    rows: usize,
    /// Raw size of the buffered row group.
    buffered: usize,
    /// Reused when the strings of a row group are handed to the writer.
    byte_arrays: Vec<ByteArray>,
}

/// The Parquet schema of a format.
pub(crate) fn schema(format: &LogFormat) -> Result<Type, ParquetError> {
    let columns = format
        .fields()
        .iter()
        .map(|f| {
            let (physical, logical) = match f.parquet_type() {
                ParquetType::Int32 => (PhysicalType::INT32, None),
                ParquetType::Int64 => (PhysicalType::INT64, None),
                ParquetType::String => (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)),
            };
            Type::primitive_type_builder(f.column_name(), physical)
                .with_repetition(Repetition::OPTIONAL)
                .with_logical_type(logical)
                .build()
                .map(Arc::new)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Type::group_type_builder("schema").with_fields(columns).build()
}

impl ParquetObject {
    pub(crate) fn new(file: File, format: &LogFormat, gzip_level: u32) -> io::Result<Self> {
        let props = WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_1_0)
            .set_dictionary_enabled(false)
            .set_compression(Compression::GZIP(GzipLevel::try_new(gzip_level).map_err(io_err)?))
            .build();
        let writer = SerializedFileWriter::new(
            BufWriter::with_capacity(256 * 1024, file),
            Arc::new(schema(format).map_err(io_err)?),
            Arc::new(props),
        )
        .map_err(io_err)?;
        let columns = format
            .fields()
            .iter()
            .map(|f| match f.parquet_type() {
                ParquetType::Int32 => Column::Int32 { values: Vec::new(), defs: Vec::new() },
                ParquetType::Int64 => Column::Int64 { values: Vec::new(), defs: Vec::new() },
                ParquetType::String => Column::Bytes { data: Vec::new(), ends: Vec::new(), defs: Vec::new() },
            })
            .collect();
        Ok(ParquetObject { writer, format: format.clone(), columns, rows: 0, buffered: 0, byte_arrays: Vec::new() })
    }

    fn write_row_group(&mut self) -> Result<(), ParquetError> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut rg = self.writer.next_row_group()?;
        for col in &mut self.columns {
            let mut cw = rg
                .next_column()?
                .ok_or_else(|| ParquetError::General("schema has fewer columns than the format".into()))?;
            match col {
                Column::Int32 { values, defs } => {
                    cw.typed::<Int32Type>().write_batch(values, Some(defs), None)?;
                    values.clear();
                    defs.clear();
                }
                Column::Int64 { values, defs } => {
                    cw.typed::<Int64Type>().write_batch(values, Some(defs), None)?;
                    values.clear();
                    defs.clear();
                }
                Column::Bytes { data, ends, defs } => {
                    // One shared buffer, sliced: no allocation per string.
                    let all = Bytes::from(std::mem::take(data));
                    let mut start = 0;
                    self.byte_arrays.clear();
                    for &end in ends.iter() {
                        self.byte_arrays.push(ByteArray::from(all.slice(start..end)));
                        start = end;
                    }
                    cw.typed::<ByteArrayType>().write_batch(&self.byte_arrays, Some(defs), None)?;
                    self.byte_arrays.clear();
                    ends.clear();
                    defs.clear();
                }
            }
            cw.close()?;
        }
        rg.close()?;
        self.rows = 0;
        self.buffered = 0;
        Ok(())
    }
}

impl ObjectWriter for ParquetObject {
    fn append(&mut self, rec: &FlowRecord) -> io::Result<()> {
        let version = self.format.version();
        for (f, col) in self.format.fields().iter().zip(&mut self.columns) {
            let v = f.value(rec, version);
            match col {
                Column::Int32 { values, defs } => match v {
                    Value::Int(n) => {
                        values.push(i32::try_from(n).unwrap_or(i32::MAX));
                        defs.push(1);
                        self.buffered += 4;
                    }
                    _ => defs.push(0),
                },
                Column::Int64 { values, defs } => match v {
                    Value::Int(n) => {
                        values.push(i64::try_from(n).unwrap_or(i64::MAX));
                        defs.push(1);
                        self.buffered += 8;
                    }
                    _ => defs.push(0),
                },
                Column::Bytes { data, ends, defs } => match v {
                    Value::Absent | Value::Str("") => defs.push(0),
                    v => {
                        let before = data.len();
                        write_value(v, data);
                        ends.push(data.len());
                        defs.push(1);
                        self.buffered += data.len() - before + 4;
                    }
                },
            }
        }
        self.rows += 1;
        if self.rows >= ROW_GROUP_ROWS || self.buffered >= ROW_GROUP_BYTES {
            self.write_row_group().map_err(io_err)?;
        }
        Ok(())
    }

    fn size_bound(&self) -> u64 {
        // Compression can only shrink the buffered values (and the header per page
        // stays within the slack).
        self.writer.bytes_written() as u64 + self.buffered as u64 + METADATA_SLACK
    }

    fn finish(mut self: Box<Self>) -> io::Result<(File, u64)> {
        self.write_row_group().map_err(io_err)?;
        let buf = self.writer.into_inner().map_err(io_err)?;
        let file = buf.into_inner().map_err(|e| e.into_error())?;
        let size = file.metadata()?.len();
        Ok((file, size))
    }
}

/// Keeps the kind of an I/O error that went through the Parquet writer.
fn io_err(e: ParquetError) -> io::Error {
    match e {
        ParquetError::External(e) => match e.downcast::<io::Error>() {
            Ok(e) => *e,
            Err(e) => io::Error::other(e),
        },
        e => io::Error::other(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_and_types() {
        let f = LogFormat::parse("${version} ${account-id} ${srcport} ${packets} ${end} ${tcp-flags} ${log-status}")
            .unwrap();
        let s = schema(&f).unwrap();
        let mut printed = Vec::new();
        parquet::schema::printer::print_schema(&mut printed, &s);
        let printed = String::from_utf8(printed).unwrap();
        for line in [
            "OPTIONAL INT32 version;",
            "OPTIONAL BYTE_ARRAY account_id (STRING);",
            "OPTIONAL INT32 srcport;",
            "OPTIONAL INT64 packets;",
            "OPTIONAL INT64 end;",
            "OPTIONAL INT32 tcp_flags;",
            "OPTIONAL BYTE_ARRAY log_status (STRING);",
        ] {
            assert!(printed.contains(line), "{line} not in\n{printed}");
        }
    }
}
