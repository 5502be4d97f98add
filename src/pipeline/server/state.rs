//! Per-meter state that outlives a connection and a restart: energy
//! registers and how far windows have been handed on. Kept in memory while
//! running, checkpointed as one JSON file written atomically (temporary
//! file, fsync, rename, fsync of the folder), so a crash leaves either the
//! previous checkpoint or the new one, never a torn file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::dsp::EnergyCounters;

/// The checkpoint file inside the state folder.
pub const CHECKPOINT_FILE: &str = "checkpoint.json";
const FORMAT_VERSION: u32 = 1;

/// One meter's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MeterState {
    pub energy: EnergyCounters,
    /// Meter time up to which windows were handed on, ns; later sessions resume after it.
    pub covered_until_ns: Option<i64>,
    /// Windows handed on over all sessions.
    pub windows: u64,
    /// Sampling sessions seen.
    pub sessions: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    version: u32,
    /// Wall clock of the write, ns since the epoch.
    written_unix_ns: i64,
    meters: BTreeMap<String, MeterState>,
}

/// The state of every meter, shared by the workers.
#[derive(Debug)]
pub struct StateStore {
    dir: PathBuf,
    meters: Mutex<BTreeMap<String, MeterState>>,
    /// Bumped on every change, so an unchanged state is not rewritten.
    generation: AtomicU64,
    /// The generation last written; held while writing (the periodic writer
    /// may still run at shutdown).
    written: Mutex<Option<u64>>,
}

impl StateStore {
    /// Opens the state folder (created if missing) and reads its checkpoint.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the state folder {}", dir.display()))?;
        let path = dir.join(CHECKPOINT_FILE);
        let meters = match std::fs::read(&path) {
            Ok(bytes) => {
                let checkpoint: Checkpoint = serde_json::from_slice(&bytes)
                    .with_context(|| format!("reading the checkpoint {}", path.display()))?;
                if checkpoint.version != FORMAT_VERSION {
                    anyhow::bail!(
                        "checkpoint {} has format version {}, this meterflow reads {FORMAT_VERSION}",
                        path.display(),
                        checkpoint.version
                    );
                }
                checkpoint.meters
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => {
                return Err(error).with_context(|| format!("reading {}", path.display()));
            }
        };
        Ok(StateStore {
            dir: dir.to_path_buf(),
            meters: Mutex::new(meters),
            generation: AtomicU64::new(0),
            written: Mutex::new(None),
        })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(CHECKPOINT_FILE)
    }

    pub fn get(&self, meter: &str) -> Option<MeterState> {
        self.lock().get(meter).cloned()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records a meter's state as of now.
    pub fn set(&self, meter: &str, state: MeterState) {
        self.lock().insert(meter.to_string(), state);
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes the checkpoint if anything changed since the last write.
    pub fn save(&self) -> anyhow::Result<bool> {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let generation = self.generation.load(Ordering::Relaxed);
        if *written == Some(generation) {
            return Ok(false);
        }
        let checkpoint = Checkpoint {
            version: FORMAT_VERSION,
            written_unix_ns: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
            meters: self.lock().clone(),
        };
        let json = serde_json::to_vec_pretty(&checkpoint).context("encoding the checkpoint")?;
        write_atomically(&self.path(), &json)?;
        *written = Some(generation);
        Ok(true)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, MeterState>> {
        self.meters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Write to a sibling temporary file, fsync, rename over `path`, fsync the folder.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{file_name}.tmp"));
    let mut file =
        std::fs::File::create(&temp).with_context(|| format!("creating {}", temp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temp.display()))?;
    drop(file);
    std::fs::rename(&temp, path)
        .with_context(|| format!("renaming {} to {}", temp.display(), path.display()))?;
    if let Ok(dir) = std::fs::File::open(dir) {
        // Makes the rename itself durable; not every filesystem allows it.
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_round_trips_and_is_only_rewritten_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        assert!(store.is_empty());
        let mut state = MeterState {
            covered_until_ns: Some(1_700_000_000_200_000_000),
            windows: 42,
            sessions: 2,
            ..MeterState::default()
        };
        state.energy.total.import_wh = 12.5;
        state.energy.total.export_wh = 0.25;
        store.set("smartmeter001", state.clone());
        assert!(store.save().unwrap());
        assert!(!store.save().unwrap(), "nothing changed");
        let reopened = StateStore::open(dir.path()).unwrap();
        assert_eq!(reopened.get("smartmeter001"), Some(state));
        assert_eq!(reopened.get("other"), None);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, [CHECKPOINT_FILE]);
    }

    #[test]
    fn a_damaged_checkpoint_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CHECKPOINT_FILE), b"{\"version\":1,\"mete").unwrap();
        let error = format!("{:#}", StateStore::open(dir.path()).unwrap_err());
        assert!(error.contains("checkpoint"), "{error}");
    }
}
