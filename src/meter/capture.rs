//! Byte-exact recordings of what a virtual meter sends on a connection, so a
//! run can be replayed into a sink. A capture is written under a temporary
//! name and renamed when the connection ends: a reader never sees half a file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Placeholder in a capture path that is replaced by the meter name.
pub const NAME_PLACEHOLDER: &str = "{name}";

/// The capture file path of one meter: `{name}` is replaced by the meter
/// name; without it and with several meters, `-<name>` goes before the
/// extension so meters never share a file.
pub fn meter_capture_path(template: &Path, name: &str, several_meters: bool) -> PathBuf {
    let text = template.to_string_lossy();
    if text.contains(NAME_PLACEHOLDER) {
        return PathBuf::from(text.replace(NAME_PLACEHOLDER, name));
    }
    if several_meters {
        with_suffix(template, &format!("-{name}"))
    } else {
        template.to_path_buf()
    }
}

/// `dir/stem<suffix>.ext`.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = match path.extension() {
        Some(ext) => format!("{stem}{suffix}.{}", ext.to_string_lossy()),
        None => format!("{stem}{suffix}"),
    };
    path.with_file_name(file)
}

/// Where one meter's captures go; later connections of the same meter get
/// `-2`, `-3`, … before the extension so the first capture is kept.
#[derive(Debug, Clone)]
pub struct CaptureTarget {
    path: PathBuf,
}

impl CaptureTarget {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CaptureTarget { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The final path of the `connection`-th connection (1-based).
    pub fn path_for(&self, connection: u64) -> PathBuf {
        if connection <= 1 {
            self.path.clone()
        } else {
            with_suffix(&self.path, &format!("-{connection}"))
        }
    }

    /// Starts the capture of the `connection`-th connection.
    pub fn open(&self, connection: u64) -> anyhow::Result<CaptureFile> {
        CaptureFile::create(self.path_for(connection))
    }
}

/// One connection's capture in progress.
#[derive(Debug)]
pub struct CaptureFile {
    temp: PathBuf,
    path: PathBuf,
    writer: Option<BufWriter<File>>,
    bytes: u64,
}

impl CaptureFile {
    /// Creates `.<file>.partial` next to `path`; `finish` renames it to `path`.
    pub fn create(path: PathBuf) -> anyhow::Result<Self> {
        let file_name = path
            .file_name()
            .with_context(|| format!("capture path {} has no file name", path.display()))?
            .to_string_lossy()
            .into_owned();
        let temp = path.with_file_name(format!(".{file_name}.partial"));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating capture directory {}", dir.display()))?;
        }
        let file = File::create(&temp)
            .with_context(|| format!("creating capture file {}", temp.display()))?;
        Ok(CaptureFile {
            temp,
            path,
            writer: Some(BufWriter::with_capacity(64 * 1024, file)),
            bytes: 0,
        })
    }

    /// The path the capture will have once finished.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes recorded so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Records bytes the meter wrote to its socket. Page-cache writes, so a
    /// synchronous write in the meter task is cheap enough.
    pub fn record(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        if let Some(writer) = self.writer.as_mut() {
            writer
                .write_all(bytes)
                .with_context(|| format!("writing capture {}", self.temp.display()))?;
            self.bytes += bytes.len() as u64;
        }
        Ok(())
    }

    /// Flushes and renames the capture to its final name.
    pub fn finish(mut self) -> anyhow::Result<PathBuf> {
        if let Some(writer) = self.writer.take() {
            let file = writer
                .into_inner()
                .map_err(|e| e.into_error())
                .with_context(|| format!("flushing capture {}", self.temp.display()))?;
            file.sync_all()
                .with_context(|| format!("syncing capture {}", self.temp.display()))?;
        }
        std::fs::rename(&self.temp, &self.path).with_context(|| {
            format!(
                "renaming capture {} to {}",
                self.temp.display(),
                self.path.display()
            )
        })?;
        Ok(self.path.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_paths() {
        let p = Path::new("/tmp/cap/{name}.bin");
        assert_eq!(
            meter_capture_path(p, "smartmeter001", true),
            PathBuf::from("/tmp/cap/smartmeter001.bin")
        );
        let p = Path::new("/tmp/cap/run.bin");
        assert_eq!(meter_capture_path(p, "m1", false), p);
        assert_eq!(
            meter_capture_path(p, "m1", true),
            PathBuf::from("/tmp/cap/run-m1.bin")
        );
        assert_eq!(
            meter_capture_path(Path::new("run"), "m1", true),
            PathBuf::from("run-m1")
        );
        let target = CaptureTarget::new("/x/a.bin");
        assert_eq!(target.path_for(1), PathBuf::from("/x/a.bin"));
        assert_eq!(target.path_for(3), PathBuf::from("/x/a-3.bin"));
    }

    #[test]
    fn capture_appears_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/m.bin");
        let mut capture = CaptureFile::create(path.clone()).unwrap();
        capture.record(b"Info:x\r\n").unwrap();
        assert!(!path.exists());
        assert_eq!(capture.finish().unwrap(), path);
        assert_eq!(std::fs::read(&path).unwrap(), b"Info:x\r\n");
    }
}
