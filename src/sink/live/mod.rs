//! The live view: what every meter measures now, kept in memory for
//! `/metrics`, the JSON API and the page at `/`. One more output of the
//! runner; it keeps nothing durable, so it acknowledges every record at once.

pub mod api;
pub mod board;
mod gauges;
pub mod meter;

use std::sync::Arc;
use std::time::Instant;

use crate::model::run_report::OutputSummary;
use crate::model::Record;
use crate::sink::output::{Output, OutputMetrics};

pub use board::{LiveBoard, FORGET_AFTER};

/// The page at `/`: one self-contained file (no CDN, no network beyond its
/// own `/api`), so it works from a laptop on a plant LAN.
pub const PAGE_HTML: &str = include_str!("page.html");

/// Feeds the board from the record log.
pub struct LiveOutput {
    board: Arc<LiveBoard>,
    last_seq: u64,
    forgotten: u64,
}

impl LiveOutput {
    pub const NAME: &'static str = "live";

    pub fn new(board: Arc<LiveBoard>) -> Self {
        LiveOutput {
            board,
            last_seq: 0,
            forgotten: 0,
        }
    }
}

impl Output for LiveOutput {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn accept(&mut self, seq: u64, record: &Record) -> anyhow::Result<()> {
        self.board.record(record);
        self.last_seq = seq;
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<u64> {
        self.forgotten += self.board.forget_silent(Instant::now()) as u64;
        Ok(self.last_seq)
    }

    fn metrics(&self) -> Option<Arc<dyn OutputMetrics>> {
        Some(Arc::clone(&self.board) as Arc<dyn OutputMetrics>)
    }

    fn close(self: Box<Self>) -> anyhow::Result<OutputSummary> {
        let mut summary = OutputSummary::new(Self::NAME);
        summary
            .totals
            .insert("meters".into(), self.board.meter_count() as u64);
        summary.totals.insert("forgotten".into(), self.forgotten);
        Ok(summary)
    }
}
