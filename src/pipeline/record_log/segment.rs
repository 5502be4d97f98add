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
//!
//! A segment whose magic is `MFRZ` holds frames instead of entries: a frame
//! has the entry layout, with the seq of its first entry, and its payload is
//! raw length u32 then zstd of entries back to back (each with its own
//! header and CRC). Records repeat their field names and most values, so a
//! flush's entries compressed together take a few percent of their size.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

pub const STAMP_LEN: usize = 20;
pub const FORMAT_VERSION: u16 = 1;
pub const SEGMENT_MAGIC: [u8; 4] = *b"MFRL";
/// A segment of zstd frames.
pub const FRAMED_SEGMENT_MAGIC: [u8; 4] = *b"MFRZ";
/// Entry bytes compressed into one frame at most (unless one entry is larger).
pub const FRAME_RAW_BYTES: usize = 1 << 20;
/// zstd level of frames: the fastest, the log is on the record path.
const FRAME_LEVEL: i32 = 1;
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

/// A compressor for [`encode_frame`].
pub fn frame_compressor() -> io::Result<zstd::bulk::Compressor<'static>> {
    zstd::bulk::Compressor::new(FRAME_LEVEL)
}

/// The frame of the encoded entries `entries` (the first has seq
/// `first_seq`), appended to `out`.
pub fn encode_frame(
    out: &mut Vec<u8>,
    first_seq: u64,
    entries: &[u8],
    compressor: &mut zstd::bulk::Compressor<'static>,
) -> io::Result<()> {
    let raw_len = u32::try_from(entries.len())
        .map_err(|_| io::Error::other("a record log frame of more than 4 GiB"))?;
    let mut payload = raw_len.to_le_bytes().to_vec();
    payload.extend_from_slice(&compressor.compress(entries)?);
    let hash = payload_hasher(&payload);
    encode_entry(out, first_seq, &payload, hash);
    Ok(())
}

/// The first entries of `pending` from byte `at` that make one frame: at
/// most [`FRAME_RAW_BYTES`], at least one entry. Returns the byte after
/// them and the seq of the last.
pub fn frame_end(pending: &[u8], at: usize) -> (usize, u64) {
    let (len, mut last_seq) = entry_at(pending, at);
    let mut end = at + len;
    while end < pending.len() {
        let (len, seq) = entry_at(pending, end);
        if end + len - at > FRAME_RAW_BYTES {
            break;
        }
        end += len;
        last_seq = seq;
    }
    (end, last_seq)
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
    /// A segment of frames: `frame` holds the entries of the frame last
    /// read, `frame_at` where the next one starts.
    framed: bool,
    frame: Vec<u8>,
    frame_at: usize,
    /// Where the frame in `frame` starts in the file.
    frame_start: u64,
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
        let framed = match header_magic(&header, first_seq) {
            Some(magic) => magic == FRAMED_SEGMENT_MAGIC,
            None => return Ok(None),
        };
        Ok(Some(EntryReader {
            input,
            offset: HEADER_LEN,
            end,
            framed,
            frame: Vec::new(),
            frame_at: 0,
            frame_start: HEADER_LEN,
        }))
    }

    /// [`Self::open`], reading on from `offset` (a [`Self::resume_offset`]
    /// of an earlier reader of the same segment).
    pub fn open_at(path: &Path, first_seq: u64, offset: u64, end: u64) -> io::Result<Option<Self>> {
        let Some(mut reader) = Self::open(path, first_seq, end)? else {
            return Ok(None);
        };
        if (HEADER_LEN..=end).contains(&offset) && offset > HEADER_LEN {
            reader.input.seek(io::SeekFrom::Start(offset))?;
            reader.offset = offset;
            reader.frame_start = offset;
        }
        Ok(Some(reader))
    }

    /// Where a reader of this segment can start to see every entry this one
    /// has not yet returned: the start of the frame still being read, or
    /// the offset after the last entry.
    pub fn resume_offset(&self) -> u64 {
        if self.framed && self.frame_at < self.frame.len() {
            self.frame_start
        } else {
            self.offset
        }
    }

    /// Byte offset after the last entry read (in a segment of frames, after
    /// the frame it came from).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads the next entry into `payload` (replacing its contents).
    pub fn next_entry(&mut self, payload: &mut Vec<u8>) -> io::Result<Step> {
        if !self.framed {
            return self.next_stored(payload);
        }
        if self.frame_at == self.frame.len() {
            self.frame_start = self.offset;
            let mut stored = std::mem::take(&mut self.frame);
            let step = self.next_stored(&mut stored)?;
            let Step::Entry { seq } = step else {
                return Ok(step);
            };
            match unframe(&stored) {
                Ok(entries) => self.frame = entries,
                Err(reason) => {
                    return Ok(Step::Bad {
                        reason: format!("frame of seq {seq}: {reason}"),
                    })
                }
            }
            self.frame_at = 0;
        }
        match parse_entry(&self.frame, self.frame_at) {
            Ok((seq, body, next)) => {
                payload.clear();
                payload.extend_from_slice(body);
                self.frame_at = next;
                Ok(Step::Entry { seq })
            }
            Err(reason) => {
                self.frame_at = self.frame.len();
                Ok(Step::Bad {
                    reason: format!("inside a frame: {reason}"),
                })
            }
        }
    }

    /// Reads the next entry (or frame) as stored in the file.
    fn next_stored(&mut self, payload: &mut Vec<u8>) -> io::Result<Step> {
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

/// The magic of a segment header of `first_seq`, either kind.
fn header_magic(header: &[u8], first_seq: u64) -> Option<[u8; 4]> {
    [SEGMENT_MAGIC, FRAMED_SEGMENT_MAGIC]
        .into_iter()
        .find(|&magic| decode_stamp(magic, header) == Some(first_seq))
}

/// Whether the segment at `path` (a valid header of `first_seq`) holds frames.
pub fn is_framed(path: &Path, first_seq: u64) -> io::Result<bool> {
    let mut header = [0u8; STAMP_LEN];
    let filled = read_full(&mut File::open(path)?, &mut header)?;
    Ok(filled == STAMP_LEN && header_magic(&header, first_seq) == Some(FRAMED_SEGMENT_MAGIC))
}

thread_local! {
    /// One zstd context per reading thread: an output reading the log back
    /// decodes frame after frame, and a context per frame cost more than
    /// the decoding (a profile of 1000 meters showed ~10 % of the sink).
    static FRAME_DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// The entries a frame's payload holds (its CRC already checked).
fn unframe(payload: &[u8]) -> Result<Vec<u8>, String> {
    let Some((raw_len, compressed)) = payload.split_first_chunk::<4>() else {
        return Err("shorter than its length field".into());
    };
    let raw_len = u32::from_le_bytes(*raw_len) as usize;
    let entries = FRAME_DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let decompressor = match cell.as_mut() {
            Some(decompressor) => decompressor,
            None => cell.insert(zstd::bulk::Decompressor::new().map_err(|e| format!("zstd: {e}"))?),
        };
        decompressor
            .decompress(compressed, raw_len)
            .map_err(|e| format!("zstd: {e}"))
    })?;
    if entries.len() != raw_len || entries.is_empty() {
        return Err(format!(
            "{} bytes of entries where {raw_len} were written",
            entries.len()
        ));
    }
    Ok(entries)
}

/// The entry at `at` of entries back to back: its seq, payload and the
/// byte after it; or why it is not one.
fn parse_entry(bytes: &[u8], at: usize) -> Result<(u64, &[u8], usize), String> {
    let header = bytes
        .get(at..at + ENTRY_HEADER_LEN)
        .ok_or("an entry header cut short")?;
    let word = |range: std::ops::Range<usize>| -> [u8; 4] {
        let mut out = [0u8; 4];
        out.copy_from_slice(&header[range]);
        out
    };
    let len = u32::from_le_bytes(word(0..4));
    let crc = u32::from_le_bytes(word(4..8));
    let mut seq_bytes = [0u8; 8];
    seq_bytes.copy_from_slice(&header[8..16]);
    let seq = u64::from_le_bytes(seq_bytes);
    let start = at + ENTRY_HEADER_LEN;
    let body = bytes
        .get(start..start + len as usize)
        .ok_or_else(|| format!("entry claims {len} payload bytes, fewer left"))?;
    if entry_crc(payload_hasher(body), seq, len) != crc {
        return Err(format!("checksum mismatch (entry claims seq {seq})"));
    }
    Ok((seq, body, start + len as usize))
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
