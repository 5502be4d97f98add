//! NDJSON file target: one packet per line, files rotated by size and age.
//!
//! A file is written under `<name>.partial` and renamed to `<name>` when it
//! is closed, so whoever reads `*.ndjson` never sees half a file. Partial
//! files left by a crash are completed (torn last line cut) and renamed on
//! the next start, so their packets are not lost.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::target::{DeliveryError, PacketTarget};

const PARTIAL_SUFFIX: &str = ".partial";

fn default_prefix() -> String {
    "packets".to_owned()
}
fn default_max_file_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_max_file_age_secs() -> u64 {
    3600
}

/// Where and how NDJSON packet files are written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NdjsonConfig {
    /// Folder for the files (created when missing).
    pub dir: PathBuf,
    /// File names are `<prefix>-<UTC open time>-<seq>.ndjson`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// A file reaching this size is closed and a new one started.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// A file open this long is closed and a new one started.
    #[serde(default = "default_max_file_age_secs")]
    pub max_file_age_secs: u64,
}

impl NdjsonConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            prefix: default_prefix(),
            max_file_bytes: default_max_file_bytes(),
            max_file_age_secs: default_max_file_age_secs(),
        }
    }
}

struct OpenFile {
    partial: PathBuf,
    done: PathBuf,
    file: File,
    bytes: u64,
    opened: Instant,
}

/// Blocking writer of rotated NDJSON files (used on a blocking thread).
pub struct NdjsonWriter {
    config: NdjsonConfig,
    current: Option<OpenFile>,
    seq: u64,
}

impl NdjsonWriter {
    /// Creates the folder and finishes any partial files a crash left.
    pub fn new(config: NdjsonConfig) -> Result<Self> {
        fs::create_dir_all(&config.dir)
            .with_context(|| format!("creating NDJSON folder {}", config.dir.display()))?;
        recover_partial_files(&config.dir, &config.prefix)?;
        Ok(Self {
            config,
            current: None,
            seq: 0,
        })
    }

    /// Appends one packet line, rotating first when the file is too old and
    /// after when it is too big.
    pub fn write_packet(&mut self, packet: &[u8]) -> Result<()> {
        self.rotate_if_old()?;
        if self.current.is_none() {
            self.current = Some(self.open_next()?);
        }
        let Some(current) = self.current.as_mut() else {
            return Err(anyhow!("NDJSON writer has no open file"));
        };
        let mut line = Vec::with_capacity(packet.len() + 1);
        line.extend_from_slice(packet);
        line.push(b'\n');
        if let Err(e) = current.file.write_all(&line) {
            // Cut what part of the line got out, so the retry starts clean.
            if let Err(cut) = current.file.set_len(current.bytes) {
                tracing::warn!(file = %current.partial.display(), error = %cut, "could not cut a failed write");
            }
            return Err(e).with_context(|| format!("writing {}", current.partial.display()));
        }
        current.bytes += line.len() as u64;
        if current.bytes >= self.config.max_file_bytes {
            self.close_current()?;
        }
        Ok(())
    }

    /// Closes the open file when it has been open longer than allowed.
    pub fn rotate_if_old(&mut self) -> Result<()> {
        let max_age = Duration::from_secs(self.config.max_file_age_secs);
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.opened.elapsed() >= max_age)
        {
            self.close_current()?;
        }
        Ok(())
    }

    /// fsyncs, closes and renames the open file to its final name.
    pub fn close_current(&mut self) -> Result<()> {
        let Some(current) = self.current.take() else {
            return Ok(());
        };
        current
            .file
            .sync_all()
            .with_context(|| format!("fsync of {}", current.partial.display()))?;
        drop(current.file);
        fs::rename(&current.partial, &current.done).with_context(|| {
            format!(
                "renaming {} to {}",
                current.partial.display(),
                current.done.display()
            )
        })
    }

    fn open_next(&mut self) -> Result<OpenFile> {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        loop {
            self.seq += 1;
            let name = format!("{}-{stamp}-{:04}.ndjson", self.config.prefix, self.seq);
            let done = self.config.dir.join(&name);
            let partial = self.config.dir.join(format!("{name}{PARTIAL_SUFFIX}"));
            if done.exists() || partial.exists() {
                continue;
            }
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&partial)
                .with_context(|| format!("creating {}", partial.display()))?;
            return Ok(OpenFile {
                partial,
                done,
                file,
                bytes: 0,
                opened: Instant::now(),
            });
        }
    }
}

/// Renames `*.ndjson.partial` files of this prefix to their final names,
/// cutting a torn last line; empty ones are removed.
fn recover_partial_files(dir: &Path, prefix: &str) -> Result<()> {
    let entries =
        fs::read_dir(dir).with_context(|| format!("listing NDJSON folder {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing NDJSON folder {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(done_name) = name.strip_suffix(PARTIAL_SUFFIX) else {
            continue;
        };
        if !name.starts_with(prefix) {
            continue;
        }
        let partial = entry.path();
        let mut data = Vec::new();
        File::open(&partial)
            .and_then(|mut f| f.read_to_end(&mut data))
            .with_context(|| format!("reading {}", partial.display()))?;
        let keep = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if keep == 0 {
            fs::remove_file(&partial)
                .with_context(|| format!("removing empty {}", partial.display()))?;
            continue;
        }
        if keep < data.len() {
            let f = OpenOptions::new()
                .write(true)
                .open(&partial)
                .with_context(|| format!("opening {}", partial.display()))?;
            f.set_len(keep as u64)
                .with_context(|| format!("truncating {}", partial.display()))?;
        }
        let mut done = dir.join(done_name);
        let mut n = 1;
        while done.exists() {
            done = dir.join(format!("{done_name}.recovered{n}"));
            n += 1;
        }
        tracing::warn!(file = %done.display(), "completed an NDJSON file left open by an earlier run");
        fs::rename(&partial, &done)
            .with_context(|| format!("renaming {} to {}", partial.display(), done.display()))?;
    }
    Ok(())
}

/// The NDJSON target: an [`NdjsonWriter`] driven from a blocking thread.
pub struct NdjsonTarget {
    writer: Option<NdjsonWriter>,
    config: NdjsonConfig,
}

impl NdjsonTarget {
    pub fn new(config: NdjsonConfig) -> Result<Self> {
        let writer = NdjsonWriter::new(config.clone())?;
        Ok(Self {
            writer: Some(writer),
            config,
        })
    }

    /// Runs `job` on the writer off the async threads, putting it back after.
    async fn with_writer<R: Send + 'static>(
        &mut self,
        job: impl FnOnce(&mut NdjsonWriter) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let mut writer = match self.writer.take() {
            Some(w) => w,
            None => NdjsonWriter::new(self.config.clone())?,
        };
        let (writer, result) = tokio::task::spawn_blocking(move || {
            let result = job(&mut writer);
            (writer, result)
        })
        .await
        .context("NDJSON writer thread failed")?;
        self.writer = Some(writer);
        result
    }
}

impl PacketTarget for NdjsonTarget {
    fn name(&self) -> &str {
        "ndjson"
    }

    async fn deliver(&mut self, packet: &Bytes) -> Result<(), DeliveryError> {
        let packet = packet.clone();
        self.with_writer(move |w| w.write_packet(&packet))
            .await
            .map_err(DeliveryError::Unavailable)
    }

    async fn maintain(&mut self) -> Result<()> {
        self.with_writer(NdjsonWriter::rotate_if_old).await
    }

    async fn close(&mut self) -> Result<()> {
        self.with_writer(NdjsonWriter::close_current).await
    }
}
