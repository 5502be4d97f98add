//! The Parquet sink as the pipeline uses it: a cheap handle that sends rows
//! over a bounded crossbeam channel to a writer thread owning a
//! [`DatasetWriter`], so encoding and file I/O never block the async
//! runtime, and a slow disk slows the senders instead of growing memory.

use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Sender};

use super::aggregates::AggregateRow;
use super::config::{DatasetInfo, ParquetConfig, TableSelection};
use super::dataset::{DatasetSummary, DatasetWriter};
use super::error::{ParquetSinkError, Result};
use super::events::EventRow;
use super::latch::LatchRow;
use super::windows::WindowRow;
use super::DeviceInfo;
use crate::wire::SampleBlock;

enum Command {
    Window(Box<WindowRow>),
    Latch(Box<LatchRow>),
    Aggregate(Box<AggregateRow>),
    Event(Box<EventRow>),
    Raw(DeviceInfo, SampleBlock),
    FinishDevice(String),
}

/// Handle to a dataset written on its own thread.
///
/// Sends block while the queue is full (backpressure). After a write error
/// the thread stops, sends fail with [`ParquetSinkError::Closed`], and
/// [`close`](Self::close) returns the error that stopped it.
pub struct ParquetSink {
    tables: TableSelection,
    commands: Option<Sender<Command>>,
    thread: Option<JoinHandle<Result<DatasetSummary>>>,
}

impl ParquetSink {
    /// Checks the configuration and output folder here (so errors reach the
    /// caller at once), then starts the writer thread.
    pub fn start(config: &ParquetConfig, info: &DatasetInfo) -> Result<Self> {
        let mut dataset = DatasetWriter::create(config, info)?;
        let (tx, rx) = bounded::<Command>(config.queue_capacity.max(1));
        let thread = std::thread::Builder::new()
            .name("parquet-writer".into())
            .spawn(move || {
                for command in rx {
                    match command {
                        Command::Window(row) => dataset.write_window(*row)?,
                        Command::Latch(row) => dataset.write_latch(*row)?,
                        Command::Aggregate(row) => dataset.write_aggregate(*row)?,
                        Command::Event(row) => dataset.write_event(*row)?,
                        Command::Raw(device, block) => dataset.write_raw(&device, &block)?,
                        Command::FinishDevice(name) => dataset.finish_device(&name)?,
                    }
                }
                dataset.close()
            })
            .map_err(|e| ParquetSinkError::io("start the writer thread for", &config.out, e))?;
        Ok(ParquetSink {
            tables: config.tables,
            commands: Some(tx),
            thread: Some(thread),
        })
    }

    fn send(&self, command: Command) -> Result<()> {
        self.commands
            .as_ref()
            .ok_or(ParquetSinkError::Closed)?
            .send(command)
            .map_err(|_| ParquetSinkError::Closed)
    }

    /// Which tables this sink writes.
    pub fn tables(&self) -> TableSelection {
        self.tables
    }

    /// Whether [`write_raw`](Self::write_raw) keeps samples, so callers can
    /// skip cloning blocks when the archive is off.
    pub fn writes_raw(&self) -> bool {
        self.tables.raw
    }

    pub fn write_window(&self, row: WindowRow) -> Result<()> {
        self.send(Command::Window(Box::new(row)))
    }

    /// A window of a latch-mode (`p,q`, `v,i_RMS`) stream.
    pub fn write_latch(&self, row: LatchRow) -> Result<()> {
        self.send(Command::Latch(Box::new(row)))
    }

    pub fn write_aggregate(&self, row: AggregateRow) -> Result<()> {
        self.send(Command::Aggregate(Box::new(row)))
    }

    pub fn write_event(&self, row: EventRow) -> Result<()> {
        self.send(Command::Event(Box::new(row)))
    }

    /// Samples for the raw archive (dropped at once when it is off).
    pub fn write_raw(&self, device: DeviceInfo, block: SampleBlock) -> Result<()> {
        if !self.tables.raw {
            return Ok(());
        }
        self.send(Command::Raw(device, block))
    }

    /// The device's stream ended: its files are finished now, not at `close`.
    pub fn finish_device(&self, device: &str) -> Result<()> {
        self.send(Command::FinishDevice(device.to_string()))
    }

    /// Writes everything queued, finishes every open file, stops the thread.
    pub fn close(mut self) -> Result<DatasetSummary> {
        self.stop()
    }

    fn stop(&mut self) -> Result<DatasetSummary> {
        drop(self.commands.take());
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| ParquetSinkError::WriterPanicked)?,
            None => Err(ParquetSinkError::Closed),
        }
    }
}

impl Drop for ParquetSink {
    /// A sink dropped without `close` still finishes its files.
    fn drop(&mut self) {
        if self.thread.is_some() {
            if let Err(e) = self.stop() {
                tracing::warn!("Parquet sink stopped on drop with an error: {e}");
            }
        }
    }
}
