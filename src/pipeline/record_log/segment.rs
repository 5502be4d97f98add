//! The on-disk format: segment files of checksummed entries, and the small
//! stamped records (segment header, ack files, snapshot header) that share
//! one layout. All integers are little-endian.
//!
//! Stamp (20 bytes): magic (4), version u16 = 1, reserved u16 = 0, value u64,
//! CRC-32 of the 16 bytes before it. A segment starts with a stamp whose
//! magic is `MFRL` and whose value is the seq of its first entry.
//!
//! Entry (16 bytes + payload): len u32 (payload bytes), crc u32, seq u64,
//! payload. The CRC (IEEE CRC-32, crc32fast) covers the payload, then seq and
//! len, so a flipped bit anywhere in the entry is caught.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

pub const STAMP_LEN: usize = 20;
pub const FORMAT_VERSION: u16 = 1;
pub const SEGMENT_MAGIC: [u8; 4] = *b"MFRL";
/// Bytes before the first entry of a segment.
pub const HEADER_LEN: u64 = STAMP_LEN as u64;
pub const ENTRY_HEADER_LEN: usize = 16;
/// Largest payload the format can carry.
pub const MAX_PAYLOAD: usize = u32::MAX as usize;

const EXTENSION: &str = ".wal";
const NAME_DIGITS: usize = 20;

/// `00000000000000000042.wal`: named by the first seq, so names sort by seq.
pub fn file_name(first_seq: u64) -> String {
    format!("{first_seq:0NAME_DIGITS$}{EXTENSION}")
}

/// The first seq of a segment file name, `None` for any other file.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(EXTENSION)?;
    if digits.len() != NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub fn encode_stamp(magic: [u8; 4], value: u64) -> [u8; STAMP_LEN] {
    let mut out = [0u8; STAMP_LEN];
    out[0..4].copy_from_slice(&magic);
    out[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[8..16].copy_from_slice(&value.to_le_bytes());
    let crc = crc32fast::hash(&out[0..16]);
    out[16..20].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The value of a stamp, `None` when the magic, version or CRC is wrong.
pub fn decode_stamp(magic: [u8; 4], bytes: &[u8]) -> Option<u64> {
    let bytes = bytes.get(..STAMP_LEN)?;
    let crc = u32::from_le_bytes(bytes[16..20].try_into().ok()?);
    if bytes[0..4] != magic
        || u16::from_le_bytes([bytes[4], bytes[5]]) != FORMAT_VERSION
        || crc32fast::hash(&bytes[0..16]) != crc
    {
        return None;
    }
    Some(u64::from_le_bytes(bytes[8..16].try_into().ok()?))
}

/// CRC-32 of a payload so far; hashing it before taking the append lock
/// keeps the lock short.
pub fn payload_hasher(payload: &[u8]) -> crc32fast::Hasher {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(payload);
    hasher
}

fn entry_crc(mut payload_hash: crc32fast::Hasher, seq: u64, len: u32) -> u32 {
    payload_hash.update(&seq.to_le_bytes());
    payload_hash.update(&len.to_le_bytes());
    payload_hash.finalize()
}

/// Appends one encoded entry; `payload.len()` must be at most `MAX_PAYLOAD`.
pub fn encode_entry(out: &mut Vec<u8>, seq: u64, payload: &[u8], hash: crc32fast::Hasher) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&entry_crc(hash, seq, len).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Total bytes and seq of the encoded entry starting at `at` in a buffer
/// the log encoded itself.
pub fn entry_at(bytes: &[u8], at: usize) -> (usize, u64) {
    let word = |range: std::ops::Range<usize>| bytes.get(range).unwrap_or(&[]);
    let len = word(at..at + 4)
        .try_into()
        .map(u32::from_le_bytes)
        .unwrap_or(0);
    let seq = word(at + 8..at + 16)
        .try_into()
        .map(u64::from_le_bytes)
        .unwrap_or(0);
    (ENTRY_HEADER_LEN + len as usize, seq)
}

/// What reading the next entry found.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A valid entry; its payload is in the caller's buffer.
    Entry { seq: u64 },
    /// The readable end was reached exactly at an entry boundary.
    End,
    /// A partial entry, a bad CRC, or a length past the end; nothing after
    /// it in this segment can be trusted.
    Bad { reason: String },
}

/// Reads a segment's entries in order, up to a byte offset.
pub struct EntryReader {
    input: BufReader<File>,
    offset: u64,
    end: u64,
}

impl EntryReader {
    /// Opens a segment and checks its header; `Ok(None)` when the file is
    /// too short or the header is not a segment header for `first_seq`.
    pub fn open(path: &Path, first_seq: u64, end: u64) -> io::Result<Option<Self>> {
        let file = File::open(path)?;
        let mut input = BufReader::with_capacity(1 << 16, file);
        let mut header = [0u8; STAMP_LEN];
        if end < HEADER_LEN || read_full(&mut input, &mut header)? < STAMP_LEN {
            return Ok(None);
        }
        if decode_stamp(SEGMENT_MAGIC, &header) != Some(first_seq) {
            return Ok(None);
        }
        Ok(Some(EntryReader {
            input,
            offset: HEADER_LEN,
            end,
        }))
    }

    /// Byte offset after the last entry read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads the next entry into `payload` (replacing its contents).
    pub fn next_entry(&mut self, payload: &mut Vec<u8>) -> io::Result<Step> {
        let left = self.end - self.offset;
        if left == 0 {
            return Ok(Step::End);
        }
        if left < ENTRY_HEADER_LEN as u64 {
            return Ok(Step::Bad {
                reason: format!("{left} bytes at the end, less than an entry header"),
            });
        }
        let mut header = [0u8; ENTRY_HEADER_LEN];
        if read_full(&mut self.input, &mut header)? < ENTRY_HEADER_LEN {
            return Ok(Step::Bad {
                reason: "the file ends inside an entry header".into(),
            });
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let mut seq_bytes = [0u8; 8];
        seq_bytes.copy_from_slice(&header[8..16]);
        let seq = u64::from_le_bytes(seq_bytes);
        let body = u64::from(len);
        if body > left - ENTRY_HEADER_LEN as u64 {
            return Ok(Step::Bad {
                reason: format!(
                    "entry claims {len} payload bytes, only {} left",
                    left - ENTRY_HEADER_LEN as u64
                ),
            });
        }
        payload.clear();
        payload.resize(len as usize, 0);
        if read_full(&mut self.input, payload)? < payload.len() {
            return Ok(Step::Bad {
                reason: "the file ends inside an entry payload".into(),
            });
        }
        if entry_crc(payload_hasher(payload), seq, len) != crc {
            return Ok(Step::Bad {
                reason: format!("checksum mismatch (entry claims seq {seq})"),
            });
        }
        self.offset += ENTRY_HEADER_LEN as u64 + body;
        Ok(Step::Entry { seq })
    }
}

/// Like `read_exact`, but a short file is a count, not an error.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Makes creations, renames and removals in `dir` durable. Filesystems that
/// cannot fsync a folder (EINVAL) are accepted as they are.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir).and_then(|d| d.sync_all()) {
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_seq_and_round_trip() {
        assert_eq!(file_name(42), "00000000000000000042.wal");
        assert_eq!(parse_file_name("00000000000000000042.wal"), Some(42));
        assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_file_name("42.wal"), None);
        assert_eq!(parse_file_name("0000000000000000004x.wal"), None);
        assert_eq!(parse_file_name("00000000000000000042.tmp"), None);
        assert!(file_name(9) < file_name(10));
    }

    #[test]
    fn a_stamp_is_the_documented_bytes_and_any_flipped_bit_is_caught() {
        let stamp = encode_stamp(SEGMENT_MAGIC, 0x0102_0304_0506_0708);
        assert_eq!(&stamp[0..4], b"MFRL");
        assert_eq!(&stamp[4..8], &[1, 0, 0, 0]);
        assert_eq!(&stamp[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(
            decode_stamp(SEGMENT_MAGIC, &stamp),
            Some(0x0102_0304_0506_0708)
        );
        assert_eq!(decode_stamp(*b"MFAK", &stamp), None);
        for bit in 0..STAMP_LEN * 8 {
            let mut bad = stamp;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(decode_stamp(SEGMENT_MAGIC, &bad), None, "bit {bit}");
        }
    }

    #[test]
    fn an_entry_is_the_documented_bytes() {
        let mut out = Vec::new();
        encode_entry(&mut out, 7, b"abc", payload_hasher(b"abc"));
        assert_eq!(out.len(), ENTRY_HEADER_LEN + 3);
        assert_eq!(&out[0..4], &[3, 0, 0, 0]);
        // CRC-32 of "abc" ++ 7u64 LE ++ 3u32 LE, computed in one pass.
        let mut whole = b"abc".to_vec();
        whole.extend_from_slice(&7u64.to_le_bytes());
        whole.extend_from_slice(&3u32.to_le_bytes());
        assert_eq!(&out[4..8], &crc32fast::hash(&whole).to_le_bytes());
        assert_eq!(&out[8..16], &7u64.to_le_bytes());
        assert_eq!(&out[16..], b"abc");
        assert_eq!(entry_at(&out, 0), (19, 7));
    }
}
