//! The Parquet sink as the pipeline uses it: a cheap handle that sends rows
//! over a bounded crossbeam channel to a writer thread owning a
//! [`DatasetWriter`], so encoding and file I/O never block the async
//! runtime, and a slow disk slows the senders instead of growing memory.

use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Sender};

use super::config::{DatasetInfo, ParquetConfig, TableSelection};
use super::dataset::{DatasetSummary, DatasetWriter};
use super::error::{ParquetSinkError, Result};
use crate::model::{
    AggregateRow, DeviceInfo, EventRow, HalfCycleRow, LatchRow, PinstRow, PqEventRow, WindowRow,
};
use crate::wire::SampleBlock;

enum Command {
    Window(Box<WindowRow>),
    Latch(Box<LatchRow>),
    Aggregate(Box<AggregateRow>),
    Event(Box<EventRow>),
    PqEvent(Box<PqEventRow>),
    HalfCycle(Box<HalfCycleRow>),
    Pinst(Box<PinstRow>),
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
    thread: WriterThread<Command>,
}

/// A writer thread fed over a bounded channel, shared by the meter and the
/// telemetry sinks: sending, stopping, and finishing the files on drop.
pub(crate) struct WriterThread<C> {
    name: &'static str,
    commands: Option<Sender<C>>,
    thread: Option<JoinHandle<Result<DatasetSummary>>>,
}

impl<C: Send + 'static> WriterThread<C> {
    /// Starts `name` running `work` over the commands (queue of `capacity`);
    /// `work` returns when the channel closes.
    pub(crate) fn start(
        name: &'static str,
        capacity: usize,
        out: &std::path::Path,
        work: impl FnOnce(crossbeam_channel::Receiver<C>) -> Result<DatasetSummary> + Send + 'static,
    ) -> Result<Self> {
        let (tx, rx) = bounded::<C>(capacity.max(1));
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || work(rx))
            .map_err(|e| ParquetSinkError::io("start the writer thread for", out, e))?;
        Ok(WriterThread {
            name,
            commands: Some(tx),
            thread: Some(thread),
        })
    }

    pub(crate) fn send(&self, command: C) -> Result<()> {
        self.commands
            .as_ref()
            .ok_or(ParquetSinkError::Closed)?
            .send(command)
            .map_err(|_| ParquetSinkError::Closed)
    }

    /// Closes the channel and waits for the thread's summary.
    pub(crate) fn stop(&mut self) -> Result<DatasetSummary> {
        drop(self.commands.take());
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| ParquetSinkError::WriterPanicked)?,
            None => Err(ParquetSinkError::Closed),
        }
    }
}

impl<C> Drop for WriterThread<C> {
    /// A sink dropped without `close` still finishes its files.
    fn drop(&mut self) {
        drop(self.commands.take());
        if let Some(thread) = self.thread.take() {
            match thread.join() {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!("{} stopped on drop with an error: {e}", self.name),
                Err(_) => tracing::warn!("{} panicked", self.name),
            }
        }
    }
}

impl ParquetSink {
    /// Checks the configuration and output folder here (so errors reach the
    /// caller at once), then starts the writer thread.
    pub fn start(config: &ParquetConfig, info: &DatasetInfo) -> Result<Self> {
        let mut dataset = DatasetWriter::create(config, info)?;
        let thread = WriterThread::start(
            "parquet-writer",
            config.queue_capacity,
            &config.out,
            move |rx| {
                for command in rx {
                    match command {
                        Command::Window(row) => dataset.write_window(*row)?,
                        Command::Latch(row) => dataset.write_latch(*row)?,
                        Command::Aggregate(row) => dataset.write_aggregate(*row)?,
                        Command::Event(row) => dataset.write_event(*row)?,
                        Command::PqEvent(row) => dataset.write_pq_event(*row)?,
                        Command::HalfCycle(row) => dataset.write_half_cycle(*row)?,
                        Command::Pinst(row) => dataset.write_pinst(*row)?,
                        Command::Raw(device, block) => dataset.write_raw(&device, &block)?,
                        Command::FinishDevice(name) => dataset.finish_device(&name)?,
                    }
                }
                dataset.close()
            },
        )?;
        Ok(ParquetSink {
            tables: config.tables,
            thread,
        })
    }

    fn send(&self, command: Command) -> Result<()> {
        self.thread.send(command)
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

    pub fn write_pq_event(&self, row: PqEventRow) -> Result<()> {
        if !self.tables.pq_events {
            return Ok(());
        }
        self.send(Command::PqEvent(Box::new(row)))
    }

    /// A `Urms(1/2)` value (dropped at once when the table is off).
    pub fn write_half_cycle(&self, row: HalfCycleRow) -> Result<()> {
        if !self.tables.half_cycle {
            return Ok(());
        }
        self.send(Command::HalfCycle(Box::new(row)))
    }

    /// A `Pinst` slot (dropped at once when the table is off).
    pub fn write_pinst(&self, row: PinstRow) -> Result<()> {
        if !self.tables.pinst {
            return Ok(());
        }
        self.send(Command::Pinst(Box::new(row)))
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
        self.thread.stop()
    }
}
