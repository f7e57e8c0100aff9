//! Page headers of a Parquet file checked before the parquet crate decodes them.
//!
//! The parquet crate (59.x) reserves a page's declared `uncompressed_page_size` before it
//! decompresses the page, and checks that size only for being non-negative (arrow-rs issue
//! 10734), so a 1 KB file declaring a 2 GiB page makes a reader allocate 2 GiB. A page's
//! uncompressed bytes are part of its column chunk's `total_uncompressed_size`, so a page
//! declaring more is refused here, before any page is decoded. The headers are Thrift compact
//! structs; only the two sizes are read, everything else is skipped.
//!
//! The footer is walked the same way first, and both walks read every byte the parquet crate
//! will. Its Thrift skip takes a bool element of a list to be no bytes long (the compact
//! protocol gives it one), so 45 bytes declaring a list of 2^31 bools in a field it skips kept
//! it looping for seconds; the two readings of such a list disagree on where it ends, so a
//! collection of bools, which no footer or page header holds, is refused. And it reads a field
//! it knows by the type Parquet's schema gives it, whatever type the bytes declare, where a walk
//! follows the bytes: 42 bytes hid the same loop behind a field of the wrong type. The walk
//! therefore knows the schema (the `schema` module) and refuses a known field declared as
//! another type.
//! Where the two readings agree, every element takes at least a byte, so a walk that reaches
//! the end bounds every count the parquet crate will meet by the length it walked. (All three
//! found by fuzzing.)
//!
//! The page headers are read by the parquet crate from a reader over the file rather than a
//! slice, and its skip of a value there copies up to the value's length without checking how
//! much came, so at the file's end a skipped double takes no bytes: [`checked`] also gives it
//! readers that answer a read at the file's end with an error.

use std::io::{BufReader, Read};

use parquet::file::metadata::ParquetMetaDataReader;
use parquet::file::reader::{ChunkReader, Length};

use schema::{Element, Field, Schema};

mod schema;

/// A header larger than this is refused rather than walked (real ones are bytes to kilobytes,
/// statistics included).
const MAX_HEADER_BYTES: u64 = 16 << 20;
/// Thrift structs nest a few levels in a page header and about ten in a footer; a deeper one is
/// hostile.
const MAX_DEPTH: u32 = 32;

/// Runs `read`, a read of a user's Parquet file, and answers a panic inside it with
/// `panicked(message)`. The parquet crate (59.x) panics on some malformed input instead of
/// answering an error: a negative column chunk offset in the footer, an unknown type in the
/// Arrow schema it carries (`ARROW:schema`, decoded by arrow-ipc), both found by fuzzing. A
/// hostile file must be a read error, not a panic in a request or a monitor.
pub fn catching_panics<T, E>(
    read: impl FnOnce() -> Result<T, E>,
    panicked: impl FnOnce(String) -> E,
) -> Result<T, E> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "malformed Parquet file".to_string());
        Err(panicked(what))
    })
}

/// A user's Parquet file (a `File`, or `Bytes` already in memory) with its footer and page
/// headers checked, ready for the parquet crate's readers, which must be given the result.
pub fn checked<R: ChunkReader>(file: R) -> Result<ReadsEndAtItsEnd<R>, String> {
    check_page_sizes(&file)?;
    Ok(ReadsEndAtItsEnd(file))
}

/// A Parquet source whose readers answer a read at the end of the file with an error rather
/// than with no bytes. The parquet crate's Thrift reader skips a value by copying up to its
/// length from the page reader and never checks how much came: at the end of a file a skipped
/// double takes no bytes, so a page header declaring 2^31 of them in its last list looped for
/// a minute, a read call each (found by fuzzing). No well-formed file is read past its end:
/// its pages are followed by its footer.
pub struct ReadsEndAtItsEnd<R>(R);

impl<R: Length> Length for ReadsEndAtItsEnd<R> {
    fn len(&self) -> u64 {
        self.0.len()
    }
}

impl<R: ChunkReader> ChunkReader for ReadsEndAtItsEnd<R> {
    type T = EndIsAnError<R::T>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        self.0.get_read(start).map(EndIsAnError)
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        self.0.get_bytes(start, length)
    }
}

/// A reader that answers a read with nothing left by an error.
pub struct EndIsAnError<T>(T);

impl<T: Read> Read for EndIsAnError<T> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.read(buf)? {
            0 if !buf.is_empty() => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the Parquet file ends inside a page",
            )),
            n => Ok(n),
        }
    }
}

/// Checks every page header of every column chunk of a Parquet file (a `File`, or `Bytes`
/// already in memory).
fn check_page_sizes<R: ChunkReader>(file: &R) -> Result<(), String> {
    check_footer(file).map_err(|e| format!("footer: {e}"))?;
    let metadata = ParquetMetaDataReader::new()
        .parse_and_finish(file)
        .map_err(|e| e.to_string())?;
    for row_group in metadata.row_groups() {
        for column in row_group.columns() {
            let (start, length) = column.byte_range();
            let total_uncompressed = u64::try_from(column.uncompressed_size()).unwrap_or(0);
            check_chunk(file, start, length, total_uncompressed)
                .map_err(|e| format!("column {}: {e}", column.column_path()))?;
        }
    }
    Ok(())
}

/// Walks the footer's Thrift struct when the file ends as plain Parquet does (its length, then
/// `PAR1`); anything else is left to the parquet crate's own errors.
fn check_footer<R: ChunkReader>(file: &R) -> Result<(), String> {
    let len = file.len();
    if len < 12 {
        return Ok(());
    }
    let tail = file.get_bytes(len - 8, 8).map_err(|e| e.to_string())?;
    if &tail[4..] != b"PAR1" {
        return Ok(());
    }
    let footer = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    let Some(start) = len.checked_sub(8 + footer) else {
        return Ok(());
    };
    let footer = usize::try_from(footer).map_err(|_| "a footer past memory")?;
    let bytes = file.get_bytes(start, footer).map_err(|e| e.to_string())?;
    let mut walk = Compact {
        input: &bytes[..],
        read: 0,
    };
    walk.walk_struct(schema::FILE_METADATA, 0)
}

fn check_chunk<R: ChunkReader>(
    file: &R,
    start: u64,
    length: u64,
    total_uncompressed: u64,
) -> Result<(), String> {
    let end = start.checked_add(length).ok_or("column chunk past 2^64")?;
    let mut position = start;
    while position < end {
        let limit = (end - position).min(MAX_HEADER_BYTES);
        let input = file.get_read(position).map_err(|e| e.to_string())?;
        let mut header = Compact {
            input: BufReader::new(input.take(limit)),
            read: 0,
        };
        let sizes = header.page_sizes()?;
        let compressed = u64::try_from(sizes.compressed).map_err(|_| "negative page size")?;
        let uncompressed =
            u64::try_from(sizes.uncompressed).map_err(|_| "negative uncompressed page size")?;
        if uncompressed > total_uncompressed {
            return Err(format!(
                "a page declares {uncompressed} uncompressed bytes, its column chunk \
                 {total_uncompressed} in all"
            ));
        }
        position += header.read;
        if compressed > end - position {
            return Err("a page runs past its column chunk".into());
        }
        position += compressed;
    }
    Ok(())
}

struct PageSizes {
    uncompressed: i64,
    compressed: i64,
}

/// A Thrift compact-protocol reader that counts the bytes it consumed.
struct Compact<R> {
    input: R,
    read: u64,
}

impl<R: Read> Compact<R> {
    fn byte(&mut self) -> Result<u8, String> {
        let mut b = [0u8];
        self.input
            .read_exact(&mut b)
            .map_err(|_| "Thrift data ends early")?;
        self.read += 1;
        Ok(b[0])
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("Thrift data holds an overlong integer".into())
    }

    fn zigzag(&mut self) -> Result<i64, String> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn skip_bytes(&mut self, n: u64) -> Result<(), String> {
        let copied = std::io::copy(&mut (&mut self.input).take(n), &mut std::io::sink())
            .map_err(|e| e.to_string())?;
        self.read += copied;
        if copied == n {
            Ok(())
        } else {
            Err("Thrift data ends early".into())
        }
    }

    /// The top-level struct's fields 2 and 3; the rest is skipped.
    fn page_sizes(&mut self) -> Result<PageSizes, String> {
        let (mut uncompressed, mut compressed) = (None, None);
        self.each_field(0, |this, id, kind| {
            match (id, kind) {
                (2, I32) => uncompressed = Some(this.zigzag()?),
                (3, I32) => compressed = Some(this.zigzag()?),
                _ => this.field(schema::PAGE_HEADER, id, kind, 1)?,
            }
            Ok(())
        })?;
        match (uncompressed, compressed) {
            (Some(uncompressed), Some(compressed)) => Ok(PageSizes {
                uncompressed,
                compressed,
            }),
            _ => Err("a page header lacks its sizes".into()),
        }
    }

    /// Calls `on_field` with each field's id and declared type, the ids worked out as the
    /// parquet crate does (16 bits, a long-form id truncated to them).
    fn each_field(
        &mut self,
        depth: u32,
        mut on_field: impl FnMut(&mut Self, i16, u8) -> Result<(), String>,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("Thrift data nests too deep".into());
        }
        let mut last_id = 0i16;
        loop {
            let b = self.byte()?;
            if b == STOP {
                return Ok(());
            }
            let kind = b & 0x0f;
            let delta = i16::from(b >> 4);
            last_id = if delta == 0 {
                self.zigzag()? as i16
            } else {
                last_id
                    .checked_add(delta)
                    .ok_or("Thrift field ids run past 2^15")?
            };
            on_field(self, last_id, kind)?;
        }
    }

    /// A struct whose fields the parquet crate reads as `schema` says.
    fn walk_struct(&mut self, schema: Schema, depth: u32) -> Result<(), String> {
        self.each_field(depth, |this, id, kind| {
            this.field(schema, id, kind, depth + 1)
        })
    }

    /// Field `id` of a struct read as `schema`, declared as `kind`.
    fn field(&mut self, schema: Schema, id: i16, kind: u8, depth: u32) -> Result<(), String> {
        let Some(&(_, field)) = schema.iter().find(|(known, _)| *known == id) else {
            return self.skip(kind, depth);
        };
        let declared_as_read = match field {
            Field::Bool => matches!(kind, TRUE | FALSE),
            Field::Byte => kind == BYTE,
            Field::Int => matches!(kind, I16 | I32 | I64),
            Field::Double => kind == DOUBLE,
            Field::Binary => kind == BINARY,
            Field::Struct(_) => kind == STRUCT,
            Field::List(_) => kind == LIST,
        };
        if !declared_as_read {
            return Err(format!(
                "Thrift field {id} declares type {kind}, which Parquet does not give it"
            ));
        }
        match field {
            Field::Struct(inner) => self.walk_struct(inner, depth),
            Field::List(element) => self.list_of(element, depth),
            _ => self.skip(kind, depth),
        }
    }

    /// A list whose elements the parquet crate reads as `element`.
    fn list_of(&mut self, element: Element, depth: u32) -> Result<(), String> {
        let (kind, n) = self.list_header()?;
        if n == 0 {
            return Ok(());
        }
        let expected = match element {
            Element::I32 => I32,
            Element::I64 => I64,
            Element::Binary => BINARY,
            Element::Struct(_) => STRUCT,
        };
        if kind != expected {
            return Err(format!(
                "a Thrift list of type {kind} where Parquet has type {expected}"
            ));
        }
        for _ in 0..n {
            match element {
                Element::Struct(inner) => self.walk_struct(inner, depth + 1)?,
                _ => self.skip(kind, depth + 1)?,
            }
        }
        Ok(())
    }

    /// A list's or set's element type and length.
    fn list_header(&mut self) -> Result<(u8, u64), String> {
        let h = self.byte()?;
        let n = match h >> 4 {
            15 => self.varint()?,
            n => u64::from(n),
        };
        Ok((h & 0x0f, n))
    }

    fn skip(&mut self, kind: u8, depth: u32) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("Thrift data nests too deep".into());
        }
        match kind {
            TRUE | FALSE => Ok(()),
            BYTE => self.byte().map(drop),
            I16 | I32 | I64 => self.varint().map(drop),
            DOUBLE => self.skip_bytes(8),
            BINARY => {
                let n = self.varint()?;
                self.skip_bytes(n)
            }
            LIST | SET => {
                let (element, n) = self.list_header()?;
                for _ in 0..n {
                    self.skip_element(element, depth + 1)?;
                }
                Ok(())
            }
            MAP => {
                let n = self.varint()?;
                if n == 0 {
                    return Ok(());
                }
                let kinds = self.byte()?;
                for _ in 0..n {
                    self.skip_element(kinds >> 4, depth + 1)?;
                    self.skip_element(kinds & 0x0f, depth + 1)?;
                }
                Ok(())
            }
            STRUCT => self.each_field(depth + 1, |this, _, kind| this.skip(kind, depth + 1)),
            other => Err(format!("Thrift data holds an unknown type {other}")),
        }
    }

    /// An element of a list, set or map, which takes at least one byte, so a count can never
    /// outrun the input.
    fn skip_element(&mut self, kind: u8, depth: u32) -> Result<(), String> {
        if matches!(kind, TRUE | FALSE) {
            return Err(
                "Thrift data holds a collection of bools, which Parquet never writes".into(),
            );
        }
        self.skip(kind, depth)
    }
}

const STOP: u8 = 0;
const TRUE: u8 = 1;
const FALSE: u8 = 2;
const BYTE: u8 = 3;
const I16: u8 = 4;
const I32: u8 = 5;
const I64: u8 = 6;
const DOUBLE: u8 = 7;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const SET: u8 = 10;
const MAP: u8 = 11;
const STRUCT: u8 = 12;

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// A header of type DATA_PAGE with the given sizes and an empty data page header struct.
    fn header(uncompressed: i64, compressed: i64) -> Vec<u8> {
        fn zigzag(v: i64) -> Vec<u8> {
            let mut z = ((v << 1) ^ (v >> 63)) as u64;
            let mut out = Vec::new();
            loop {
                let b = (z & 0x7f) as u8;
                z >>= 7;
                if z == 0 {
                    out.push(b);
                    return out;
                }
                out.push(b | 0x80);
            }
        }
        let mut h = vec![0x15];
        h.extend(zigzag(0));
        h.push(0x15);
        h.extend(zigzag(uncompressed));
        h.push(0x15);
        h.extend(zigzag(compressed));
        // Field 5, a struct holding one i32 (field 1) and a list of two i32s (field 10, which
        // Parquet does not have), then stops.
        h.extend([0x2c, 0x15, 0x02, 0x99, 0x25, 0x02, 0x04, 0x00, 0x00]);
        h
    }

    fn chunk(pages: &[(i64, i64)]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for &(u, c) in pages {
            bytes.extend(header(u, c));
            bytes.extend(std::iter::repeat_n(0u8, usize::try_from(c).unwrap()));
        }
        bytes
    }

    #[test]
    fn a_checked_file_answers_a_read_at_its_end_with_an_error() {
        let file = ReadsEndAtItsEnd(Bytes::from_static(b"PAR1"));
        let mut read = file.get_read(2).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(read.read(&mut buf).unwrap(), 2);
        let e = read.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(read.read(&mut []).unwrap(), 0, "an empty read is no read");
    }

    #[test]
    fn pages_within_their_chunk_pass() {
        let bytes = chunk(&[(40, 10), (30, 5)]);
        let len = bytes.len() as u64;
        check_chunk(&Bytes::from(bytes), 0, len, 70).unwrap();
    }

    #[test]
    fn a_page_declaring_more_than_its_chunk_is_refused_before_decoding() {
        let bytes = chunk(&[(40, 10), (900_000_000, 5)]);
        let len = bytes.len() as u64;
        let e = check_chunk(&Bytes::from(bytes), 0, len, 70).unwrap_err();
        assert!(e.contains("900000000 uncompressed bytes"), "{e}");
    }

    #[test]
    fn malformed_headers_are_errors_not_panics_or_hangs() {
        let cases: Vec<Vec<u8>> = vec![
            chunk(&[(-1, 10)]),
            chunk(&[(10, 1_000)])[..40].to_vec(),
            vec![0x15],
            vec![0x19, 0xf9, 0xff, 0xff, 0xff, 0xff, 0x0f],
            std::iter::repeat_n(0x1c, 100).collect(),
            vec![0x1d],
        ];
        for bytes in cases {
            let len = bytes.len() as u64;
            assert!(check_chunk(&Bytes::from(bytes), 0, len, 1_000).is_err());
        }
    }

    /// A footer of `thrift` bytes, as the last bytes of a file.
    fn file_with_footer(thrift: &[u8]) -> Bytes {
        let mut bytes = b"PAR1".to_vec();
        bytes.extend(thrift);
        bytes.extend(u32::try_from(thrift.len()).unwrap().to_le_bytes());
        bytes.extend(b"PAR1");
        Bytes::from(bytes)
    }

    #[test]
    fn a_footer_declaring_more_elements_than_bytes_is_refused() {
        // Field 15, unknown to Parquet, a list of 2^31 - 1 i32s (header 0xf5, then the count).
        let list = [0xf9, 0xf5, 0xff, 0xff, 0xff, 0xff, 0x07, 0x02, 0x04, 0x00];
        // Field 15, a map of 2^31 - 1 i32-to-i32 entries.
        let map = [0xfb, 0xff, 0xff, 0xff, 0xff, 0x07, 0x55, 0x02, 0x04, 0x00];
        for thrift in [&list[..], &map[..]] {
            let e = check_footer(&file_with_footer(thrift)).unwrap_err();
            assert!(e.contains("ends early"), "{e}");
        }
        // The same list holding its two i32s is well formed.
        check_footer(&file_with_footer(&[0xf9, 0x25, 0x02, 0x04, 0x00])).unwrap();
    }

    #[test]
    fn a_footer_holding_a_collection_of_bools_is_refused() {
        // Field 15, a list of two bools: the parquet crate reads no bytes for them and takes
        // the next byte for a field header, here one declaring 2^31 - 1 bools in its turn.
        let list = [
            0xf9, 0x21, 0x01, 0x02, 0x19, 0xf1, 0xff, 0xff, 0xff, 0xff, 0x07, 0x00,
        ];
        // Field 15, a map of one i32-to-bool entry.
        let map = [0xfb, 0x01, 0x51, 0x02, 0x01, 0x00];
        for thrift in [&list[..], &map[..]] {
            let e = check_footer(&file_with_footer(thrift)).unwrap_err();
            assert!(e.contains("collection of bools"), "{e}");
        }
    }

    #[test]
    fn a_known_field_of_another_type_is_refused() {
        // FileMetaData's field 1 (version, an i32) declared a list: the parquet crate would
        // read an i32 from the list's header and go on from there, this walk through the list.
        let e = check_footer(&file_with_footer(&[0x19, 0x25, 0x02, 0x04, 0x00])).unwrap_err();
        assert!(e.contains("field 1 declares type 9"), "{e}");
        // Field 4 (row groups) a list of i32s rather than of structs.
        let e = check_footer(&file_with_footer(&[0x49, 0x15, 0x02, 0x00])).unwrap_err();
        assert!(e.contains("list of type 5"), "{e}");
        // A page header's statistics (field 5 of its data page header) declared a binary.
        let mut header = vec![0x15, 0x00, 0x15, 0x02, 0x15, 0x02];
        header.extend([0x2c, 0x15, 0x02, 0x48, 0x00, 0x00, 0x00]);
        let len = header.len() as u64;
        let e = check_chunk(&Bytes::from(header), 0, len, 1).unwrap_err();
        assert!(e.contains("field 5 declares type 8"), "{e}");
    }

    /// Files other writers make pass: pyarrow 25 with data pages v1 and v2, page indexes,
    /// statistics, checksums, a bloom filter, sorting columns and most logical types, and the
    /// example feature repository's data.
    #[test]
    fn files_from_other_writers_pass() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for path in [
            "tests/data/pyarrow-v1-pages.parquet",
            "tests/data/pyarrow-v2-pages.parquet",
            "../../examples/feature_repo/data/customer_profile.parquet",
            "../../examples/feature_repo/data/driver_hourly_stats.parquet",
        ] {
            let file = std::fs::File::open(root.join(path)).unwrap();
            checked(file).unwrap_or_else(|e| panic!("{path}: {e}"));
        }
    }
}
