//! What a virtual meter has still to write to its socket: sample payloads
//! as shared views of the bytes they were sampled into (a replayed
//! waveform's are views of its table), with headers (held inline) and lines
//! between them, written with one vectored write. A load generator of a thousand meters
//! then copies no sample in user space; the kernel's copy into the socket
//! is the only one.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

/// Parts handed to one vectored write (far below any system's IOV_MAX).
pub const MAX_WRITE_PARTS: usize = 64;

/// Longest piece held inline (a chunk header is 11 bytes).
const SMALL: usize = 16;

#[derive(Debug)]
enum Part {
    Shared(Bytes),
    /// `bytes[start..end]`: a header, without an allocation of its own.
    Small {
        bytes: [u8; SMALL],
        start: u8,
        end: u8,
    },
}

impl Part {
    fn as_slice(&self) -> &[u8] {
        match self {
            Part::Shared(bytes) => bytes,
            Part::Small { bytes, start, end } => &bytes[usize::from(*start)..usize::from(*end)],
        }
    }

    fn advance(&mut self, n: usize) {
        match self {
            Part::Shared(bytes) => bytes.advance(n),
            // Below `end`, which is at most SMALL.
            Part::Small { start, .. } => *start += n as u8,
        }
    }
}

/// Bytes queued for the socket, in order.
#[derive(Debug, Default)]
pub struct OutQueue {
    parts: VecDeque<Part>,
    /// Bytes in `parts`.
    parts_len: usize,
    /// Lines written after the last part.
    tail: BytesMut,
}

impl OutQueue {
    pub fn len(&self) -> usize {
        self.parts_len + self.tail.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where lines go (copied).
    pub fn tail(&mut self) -> &mut BytesMut {
        &mut self.tail
    }

    /// Queues `part` after everything so far, without copying it.
    pub fn push(&mut self, part: Bytes) {
        if part.is_empty() {
            return;
        }
        self.seal_tail();
        self.parts_len += part.len();
        self.parts.push_back(Part::Shared(part));
    }

    /// Queues a short piece (a header) by value; a longer one goes to the tail.
    pub fn push_small(&mut self, piece: &[u8]) {
        if piece.len() > SMALL {
            self.tail.extend_from_slice(piece);
            return;
        }
        self.seal_tail();
        let mut bytes = [0u8; SMALL];
        bytes[..piece.len()].copy_from_slice(piece);
        self.parts_len += piece.len();
        self.parts.push_back(Part::Small {
            bytes,
            start: 0,
            end: piece.len() as u8,
        });
    }

    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            let written = self.tail.split().freeze();
            self.parts_len += written.len();
            self.parts.push_back(Part::Shared(written));
        }
    }

    /// The front of the queue as slices for one vectored write; returns
    /// how many of `slices` it filled.
    pub fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let tail = (!self.tail.is_empty()).then_some(&self.tail[..]);
        let mut filled = 0;
        for (slot, bytes) in slices
            .iter_mut()
            .zip(self.parts.iter().map(Part::as_slice).chain(tail))
        {
            *slot = IoSlice::new(bytes);
            filled += 1;
        }
        filled
    }

    /// Forgets the first `n` bytes (written), handing each written piece
    /// to `written` in order (a capture file records them).
    pub fn advance(&mut self, mut n: usize, written: &mut dyn FnMut(&[u8])) {
        while n > 0 {
            let Some(part) = self.parts.front_mut() else {
                let take = n.min(self.tail.len());
                written(&self.tail[..take]);
                self.tail.advance(take);
                return;
            };
            let bytes = part.as_slice();
            let take = n.min(bytes.len());
            written(&bytes[..take]);
            n -= take;
            self.parts_len -= take;
            if take == bytes.len() {
                self.parts.pop_front();
            } else {
                part.advance(take);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    /// Whatever the mix of parts and small writes, and however short the
    /// writes, the bytes come out in the order they went in.
    #[test]
    fn bytes_leave_in_order_through_short_writes() {
        let mut queue = OutQueue::default();
        let mut expected = Vec::new();
        for k in 0u8..40 {
            if k % 3 == 0 {
                let line = [b'L', k, b'\n'];
                queue.tail().put_slice(&line);
                expected.extend_from_slice(&line);
            } else if k % 3 == 1 && k % 2 == 0 {
                let header: Vec<u8> = (0..k % 17).collect();
                queue.push_small(&header);
                expected.extend_from_slice(&header);
            } else {
                let part: Vec<u8> = (0..usize::from(k) * 7)
                    .map(|i| (i as u8).wrapping_mul(k))
                    .collect();
                expected.extend_from_slice(&part);
                queue.push(Bytes::from(part));
            }
        }
        assert_eq!(queue.len(), expected.len());
        let mut out = Vec::new();
        let mut write_len = 1;
        while !queue.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_WRITE_PARTS];
            let filled = queue.io_slices(&mut slices);
            assert!(filled > 0);
            // A socket taking `write_len` bytes of what it was offered.
            let offered: Vec<u8> = slices[..filled].iter().flat_map(|s| s.to_vec()).collect();
            let n = write_len.min(offered.len());
            let mut recorded = Vec::new();
            queue.advance(n, &mut |piece| recorded.extend_from_slice(piece));
            assert_eq!(recorded, offered[..n]);
            out.extend_from_slice(&recorded);
            write_len = write_len * 3 % 997 + 1;
        }
        assert_eq!(out, expected);
        assert_eq!(queue.len(), 0);
    }
}
