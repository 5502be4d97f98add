//! Reads a capture on its own thread while the caller's thread consumes it.
//!
//! Reading, frame splitting and sample decoding are a large share of a
//! batch's work; on a thread of their own they overlap the metrics engine,
//! so even a single large file uses two cores. Consecutive blocks are
//! merged into larger ones on the way (the engine's windows do not depend
//! on block boundaries), which also saves per-block work downstream.
//! Sessions, blocks and events keep their order.

use std::path::Path;

use crossbeam_channel::{bounded, Sender};

use super::capture::{
    read_capture, CaptureError, CaptureSummary, CaptureVisitor, RawParams, SessionDescription,
};
use super::event::SourceEvent;
use super::recording::Recording;
use super::recording_chain::read_slices;
use crate::wire::samples::SampleBlock;

/// Samples per merged block: large enough to amortise the hand-over, small
/// enough to stay in cache (6 channels × 4 B × 4096 = 96 KiB).
const MERGED_BLOCK_SAMPLES: usize = 4096;
/// Merged blocks in flight between the threads.
const QUEUE_BLOCKS: usize = 8;

enum Item {
    Session(Box<SessionDescription>),
    Block(SampleBlock),
    Event(SourceEvent),
}

/// The reader thread's visitor: merges contiguous blocks, forwards the rest.
struct Forwarder {
    sender: Sender<Item>,
    pending: Option<SampleBlock>,
    /// The consumer went away: stop sending (the read still finishes).
    closed: bool,
}

impl Forwarder {
    /// Appends `block` to the pending one when it continues it and both fit
    /// in a merged block.
    fn merge(&mut self, block: &SampleBlock) -> bool {
        let Some(pending) = self.pending.as_mut() else {
            return false;
        };
        if !continues(pending, block) || pending.len() + block.len() > MERGED_BLOCK_SAMPLES {
            return false;
        }
        for (merged, channel) in pending.channels.iter_mut().zip(&block.channels) {
            merged.extend_from_slice(channel);
        }
        true
    }

    fn send(&mut self, item: Item) {
        if !self.closed && self.sender.send(item).is_err() {
            self.closed = true;
        }
    }

    fn flush(&mut self) {
        if let Some(block) = self.pending.take() {
            self.send(Item::Block(block));
        }
    }
}

/// An empty block where `block` starts (same stream, index and gap).
fn starting_like(block: &SampleBlock) -> SampleBlock {
    let mut start = SampleBlock::new(block.measures, block.rate, block.start_unix_ns);
    start.first_index = block.first_index;
    start.gap_before = block.gap_before;
    start
}

/// Whether `next` continues `pending` with nothing lost in between.
fn continues(pending: &SampleBlock, next: &SampleBlock) -> bool {
    next.gap_before == 0
        && next.measures == pending.measures
        && next.rate == pending.rate
        && next.start_unix_ns == pending.start_unix_ns
        && next.first_index == pending.first_index + pending.len() as u64
        && next.channels.len() == pending.channels.len()
}

impl CaptureVisitor for Forwarder {
    fn session_start(&mut self, session: &SessionDescription) {
        self.flush();
        self.send(Item::Session(Box::new(session.clone())));
    }

    fn block(&mut self, block: &SampleBlock) {
        if self.merge(block) {
            return;
        }
        self.flush();
        let mut merged = starting_like(block);
        merged.channels = block
            .channels
            .iter()
            .map(|channel| {
                let mut buffer = Vec::with_capacity(MERGED_BLOCK_SAMPLES.max(channel.len()));
                buffer.extend_from_slice(channel);
                buffer
            })
            .collect();
        self.pending = Some(merged);
    }

    /// A block already as large as a merged one travels as it is: its
    /// vectors change hands instead of being copied (the copy was a sixth
    /// of a batch's reading thread). The feed gets empty ones of the same
    /// capacity back.
    fn block_owned(&mut self, block: &mut SampleBlock) {
        if block.len() < MERGED_BLOCK_SAMPLES / 2 {
            return self.block(block);
        }
        if self.merge(block) {
            return;
        }
        self.flush();
        let mut whole = starting_like(block);
        whole.channels = block
            .channels
            .iter_mut()
            .map(|channel| std::mem::replace(channel, Vec::with_capacity(channel.capacity())))
            .collect();
        self.send(Item::Block(whole));
    }

    fn event(&mut self, event: SourceEvent) {
        self.flush();
        self.send(Item::Event(event));
    }
}

/// [`read_capture`], with the reading on a separate thread; `visitor` sees
/// the same sessions, samples and events in the same order, in larger blocks.
pub fn read_capture_ahead(
    path: &Path,
    raw: &RawParams,
    visitor: &mut dyn CaptureVisitor,
) -> Result<CaptureSummary, CaptureError> {
    read_ahead(visitor, |forwarder| read_capture(path, raw, forwarder))
}

/// [`read_slices`] with the reading (and ffmpeg's output) on a separate thread.
pub fn read_slices_ahead(
    slices: &[Recording],
    raw: &RawParams,
    visitor: &mut dyn CaptureVisitor,
) -> Vec<Result<CaptureSummary, CaptureError>> {
    read_ahead(visitor, |forwarder| read_slices(slices, raw, forwarder))
}

/// Runs `read` on a thread of its own, handing what it visits to `visitor`.
fn read_ahead<T: Send>(
    visitor: &mut dyn CaptureVisitor,
    read: impl FnOnce(&mut dyn CaptureVisitor) -> T + Send,
) -> T {
    let (sender, receiver) = bounded(QUEUE_BLOCKS);
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut forwarder = Forwarder {
                sender,
                pending: None,
                closed: false,
            };
            let summary = read(&mut forwarder);
            forwarder.flush();
            summary
        });
        for item in receiver {
            match item {
                Item::Session(session) => visitor.session_start(&session),
                Item::Block(block) => visitor.block(&block),
                Item::Event(event) => visitor.event(event),
            }
        }
        reader.join().unwrap_or_else(|panic| {
            // Re-raise a reader panic on the caller's thread as it would have
            // happened without the thread.
            std::panic::resume_unwind(panic)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::event::EventKind;
    use crate::wire::Measures;

    /// Every sample of every channel, and each session and event tagged with
    /// the number of samples seen before it.
    #[derive(Default, PartialEq, Debug)]
    struct Recorder {
        marks: Vec<String>,
        channels: Vec<Vec<f32>>,
        seen: usize,
        block_lengths: Vec<usize>,
    }

    impl CaptureVisitor for Recorder {
        fn session_start(&mut self, session: &SessionDescription) {
            self.marks
                .push(format!("{} session {}", self.seen, session.device));
        }
        fn block(&mut self, block: &SampleBlock) {
            self.channels.resize(block.channels.len(), Vec::new());
            for (all, channel) in self.channels.iter_mut().zip(&block.channels) {
                all.extend_from_slice(channel);
            }
            if block.gap_before > 0 {
                self.marks.push(format!(
                    "{} gap {} at {}",
                    self.seen, block.gap_before, block.first_index
                ));
            }
            self.seen += block.len();
            self.block_lengths.push(block.len());
        }
        fn event(&mut self, event: SourceEvent) {
            self.marks
                .push(format!("{} event {:?}", self.seen, event.kind));
        }
    }

    fn block(first_index: u64, gap_before: u64, len: usize) -> SampleBlock {
        let mut block = SampleBlock::new(Measures::SinglePhase, 8000, 0);
        block.first_index = first_index;
        block.gap_before = gap_before;
        for (c, channel) in block.channels.iter_mut().enumerate() {
            channel.extend((0..len).map(|k| (first_index as usize + k) as f32 + c as f32 * 0.5));
        }
        block
    }

    #[test]
    fn captures_read_ahead_give_the_same_samples_and_events_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
        for name in ["three_phase_8khz.mfcap", "phase_l2_16khz_drift.mfcap"] {
            let path = dir.join(name);
            let mut direct = Recorder::default();
            let direct_summary = read_capture(&path, &RawParams::default(), &mut direct)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut ahead = Recorder::default();
            let ahead_summary = read_capture_ahead(&path, &RawParams::default(), &mut ahead)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(direct.seen > 0, "{name}");
            assert_eq!(direct.channels, ahead.channels, "{name}");
            assert_eq!(direct.marks, ahead.marks, "{name}");
            assert_eq!(direct_summary.samples(), ahead_summary.samples(), "{name}");
            // Reading hands over runs of chunks (a chunk is tens of
            // samples); ahead, they stay runs or merge further.
            let largest_read = direct.block_lengths.iter().copied().max().unwrap_or(0);
            assert!(
                largest_read >= MERGED_BLOCK_SAMPLES / 2,
                "{name}: {largest_read}"
            );
            assert!(
                ahead.block_lengths.len() <= direct.block_lengths.len(),
                "{name}"
            );
            let limit = MERGED_BLOCK_SAMPLES.max(largest_read);
            assert!(
                ahead.block_lengths.iter().all(|&len| len <= limit),
                "{name}"
            );
        }
    }

    #[test]
    fn gaps_events_and_sessions_end_a_merged_block() {
        let (sender, receiver) = bounded(64);
        let mut forwarder = Forwarder {
            sender,
            pending: None,
            closed: false,
        };
        forwarder.block(&block(0, 0, 42));
        forwarder.block(&block(42, 0, 42));
        // Lost samples before this one: it must not join the block before.
        forwarder.block(&block(100, 16, 42));
        forwarder.block(&block(142, 0, 4100));
        forwarder.event(SourceEvent {
            unix_ns: 0,
            kind: EventKind::SessionStart,
        });
        forwarder.block(&block(4242, 0, 10));
        forwarder.flush();
        drop(forwarder);
        let mut recorder = Recorder::default();
        for item in receiver {
            match item {
                Item::Session(session) => recorder.session_start(&session),
                Item::Block(block) => recorder.block(&block),
                Item::Event(event) => recorder.event(event),
            }
        }
        // 42 + 4100 > 4096 samples: the 4100 start their own block.
        assert_eq!(recorder.block_lengths, [84, 42, 4100, 10]);
        assert_eq!(
            recorder.marks,
            ["84 gap 16 at 100", "4226 event SessionStart"]
        );
        let expected: Vec<f32> = (0..84).chain(100..4252).map(|k| k as f32).collect();
        assert_eq!(recorder.channels[0], expected);
    }

    #[test]
    fn owned_blocks_change_hands_whole_and_small_ones_still_merge() {
        let (sender, receiver) = bounded(64);
        let mut forwarder = Forwarder {
            sender,
            pending: None,
            closed: false,
        };
        let mut small = block(0, 0, 100);
        forwarder.block_owned(&mut small);
        // Small: copied into the pending block, the feed keeps its samples.
        assert_eq!(small.len(), 100);
        let mut large = block(100, 0, 3000);
        forwarder.block_owned(&mut large);
        // 100 + 3000 fit in one merged block: merged by copy.
        assert_eq!(large.len(), 3000);
        let mut whole = block(3100, 0, 4000);
        let capacity_before = whole.channels[0].capacity();
        forwarder.block_owned(&mut whole);
        // Taken: the feed's channels are empty with the same room.
        assert!(whole.channels.iter().all(Vec::is_empty));
        assert_eq!(whole.channels.len(), 2);
        assert_eq!(whole.channels[0].capacity(), capacity_before);
        // After a gap a large block does not join anything either.
        let mut after_gap = block(7200, 100, 2048);
        forwarder.block_owned(&mut after_gap);
        assert!(after_gap.channels.iter().all(Vec::is_empty));
        forwarder.flush();
        drop(forwarder);
        let mut recorder = Recorder::default();
        for item in receiver {
            if let Item::Block(block) = item {
                recorder.block(&block);
            }
        }
        assert_eq!(recorder.block_lengths, [3100, 4000, 2048]);
        let expected: Vec<f32> = (0..7100).chain(7200..9248).map(|k| k as f32).collect();
        assert_eq!(recorder.channels[0], expected);
        let second: Vec<f32> = expected.iter().map(|k| k + 0.5).collect();
        assert_eq!(recorder.channels[1], second);
    }

    #[test]
    fn errors_come_back_from_the_reader_thread() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("empty.bin");
        std::fs::write(&path, b"").unwrap_or_else(|e| panic!("{e}"));
        let mut visitor = Recorder::default();
        let result = read_capture_ahead(&path, &RawParams::default(), &mut visitor);
        assert!(matches!(result, Err(CaptureError::Empty)), "{result:?}");
        assert_eq!(visitor, Recorder::default());
    }
}
