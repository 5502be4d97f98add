//! The state snapshot: an opaque blob that covers every entry up to a seq,
//! replaced atomically. Segments are never deleted past it, so the state is
//! always the snapshot plus the entries after it.
//!
//! File `snapshot`: stamp (magic `MFSN`, seq), blob length u64, CRC-32 of
//! the blob then the seq (u32), blob.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::segment::{decode_stamp, encode_stamp, STAMP_LEN};
use crate::sink::atomic_file::write_atomically;

const SNAPSHOT_MAGIC: [u8; 4] = *b"MFSN";
const FILE_NAME: &str = "snapshot";
const PREFIX_LEN: usize = STAMP_LEN + 12;

/// A stored state blob and the last seq it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub seq: u64,
    pub bytes: Vec<u8>,
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

fn blob_crc(bytes: &[u8], seq: u64) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(bytes);
    hasher.update(&seq.to_le_bytes());
    hasher.finalize()
}

/// Replaces the snapshot durably.
pub fn store(dir: &Path, seq: u64, bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = Vec::with_capacity(PREFIX_LEN + bytes.len());
    out.extend_from_slice(&encode_stamp(SNAPSHOT_MAGIC, seq));
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(&blob_crc(bytes, seq).to_le_bytes());
    out.extend_from_slice(bytes);
    write_atomically(&path(dir), &out).context("persisting the record log snapshot")
}

/// Why a snapshot file was not used, and its size.
pub type Unusable = (String, u64);

/// The stored snapshot, or why not when the file exists but cannot be
/// trusted: it is then left in place, unused.
pub fn load(dir: &Path) -> anyhow::Result<(Option<Snapshot>, Option<Unusable>)> {
    let path = path(dir);
    let data = match fs::read(&path) {
        Ok(data) => data,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((None, None)),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let bad = |why: &str| {
        Ok((
            None,
            Some((
                format!(
                    "snapshot {} is unusable ({why}); state restarts empty",
                    path.display()
                ),
                data.len() as u64,
            )),
        ))
    };
    let Some(seq) = decode_stamp(SNAPSHOT_MAGIC, &data) else {
        return bad("bad header");
    };
    let Some(prefix) = data.get(STAMP_LEN..PREFIX_LEN) else {
        return bad("too short");
    };
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&prefix[0..8]);
    let mut crc_bytes = [0u8; 4];
    crc_bytes.copy_from_slice(&prefix[8..12]);
    let body = &data[PREFIX_LEN..];
    if u64::from_le_bytes(len_bytes) != body.len() as u64 {
        return bad("length mismatch");
    }
    if blob_crc(body, seq) != u32::from_le_bytes(crc_bytes) {
        return bad("checksum mismatch");
    }
    Ok((
        Some(Snapshot {
            seq,
            bytes: body.to_vec(),
        }),
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_round_trips_and_a_flipped_bit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), (None, None));
        store(dir.path(), 42, b"energy registers").unwrap();
        let (snapshot, problem) = load(dir.path()).unwrap();
        assert_eq!(problem, None);
        assert_eq!(
            snapshot,
            Some(Snapshot {
                seq: 42,
                bytes: b"energy registers".to_vec()
            })
        );
        let mut data = fs::read(path(dir.path())).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0x10;
        fs::write(path(dir.path()), &data).unwrap();
        let (snapshot, problem) = load(dir.path()).unwrap();
        assert_eq!(snapshot, None);
        assert_eq!(problem.map(|(_, bytes)| bytes), Some(data.len() as u64));
    }
}
