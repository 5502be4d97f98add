//! Per-meter state that outlives a connection and a restart: energy
//! registers and how far windows have been handed on.
//!
//! The state is derived from the records themselves: every record that
//! enters the record log updates it ([`StateStore::apply`]), the log's
//! snapshot carries it, and a restart rebuilds it from the snapshot plus
//! the log's tail, so the registers continue from exactly the last durable
//! window. `checkpoint.json` is a readable copy written with each snapshot
//! (and read only when there is no record log yet, e.g. after an upgrade);
//! a damaged copy is ignored with a warning, never a reason not to start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::model::EnergyCounters;

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

/// A snapshot in the record log.
#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    meters: BTreeMap<String, MeterState>,
    positions: StreamPositions,
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
    /// Meters whose results after `covered_until_ns` were lost (a crash, a
    /// dead cluster node), with why; their next window records the span as
    /// a `lost_results` event.
    lost_since: Mutex<BTreeMap<String, (i64, String)>>,
    positions: Mutex<StreamPositions>,
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
    /// A checkpoint that does not parse (empty, cut short, garbage) is
    /// ignored with one warning: the record log rebuilds the state, and the
    /// next snapshot rewrites the copy.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the state folder {}", dir.display()))?;
        let path = dir.join(CHECKPOINT_FILE);
        let meters = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Checkpoint>(&bytes) {
                Ok(checkpoint) if checkpoint.version != FORMAT_VERSION => {
                    anyhow::bail!(
                        "checkpoint {} has format version {}, this meterflow reads {FORMAT_VERSION}",
                        path.display(),
                        checkpoint.version
                    );
                }
                Ok(checkpoint) => checkpoint.meters,
                Err(error) => {
                    tracing::warn!(
                        "the readable state copy {} is damaged ({} bytes: {error}) and was ignored; \
                         the meter state comes from the record log",
                        path.display(),
                        bytes.len()
                    );
                    BTreeMap::new()
                }
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => {
                return Err(error).with_context(|| format!("reading {}", path.display()));
            }
        };
        Ok(StateStore {
            lost_since: Mutex::new(BTreeMap::new()),
            positions: Mutex::new(StreamPositions::default()),
            dir: dir.to_path_buf(),
            meters: Mutex::new(meters),
            generation: AtomicU64::new(0),
            written: Mutex::new(None),
        })
    }

    /// State that lives only as long as the process (`meterflow run`).
    pub fn in_memory() -> Self {
        StateStore {
            lost_since: Mutex::new(BTreeMap::new()),
            positions: Mutex::new(StreamPositions::default()),
            dir: PathBuf::new(),
            meters: Mutex::new(BTreeMap::new()),
            generation: AtomicU64::new(0),
            written: Mutex::new(None),
        }
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
        if self.dir.as_os_str().is_empty() {
            return Ok(false);
        }
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

    /// Replaces the state with a record log snapshot's (see [`Self::encode`]).
    pub fn restore(&self, bytes: &[u8]) -> anyhow::Result<()> {
        let snapshot = match ciborium::from_reader::<Snapshot, _>(bytes) {
            Ok(snapshot) => snapshot,
            // Snapshots before cluster mode held the meters alone.
            Err(_) => Snapshot {
                meters: ciborium::from_reader(bytes)
                    .map_err(|e| anyhow::anyhow!("decoding the meter state snapshot: {e}"))?,
                positions: StreamPositions::default(),
            },
        };
        *self.lock() = snapshot.meters;
        *self.positions.lock().unwrap_or_else(|e| e.into_inner()) = snapshot.positions;
        self.generation.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The state as a record log snapshot.
    pub fn encode(&self) -> anyhow::Result<Vec<u8>> {
        let snapshot = Snapshot {
            meters: self.lock().clone(),
            positions: self.positions(),
        };
        let mut bytes = Vec::new();
        ciborium::into_writer(&snapshot, &mut bytes)
            .map_err(|e| anyhow::anyhow!("encoding the meter state: {e}"))?;
        Ok(bytes)
    }

    /// Folds one record into its meter's state: windows carry the registers
    /// and how far results reach.
    pub fn apply(&self, record: &crate::model::Record) {
        use crate::model::Record;
        let (name, end_ns, energy) = match record {
            Record::Consumed(mark) => {
                let mut positions = self.positions.lock().unwrap_or_else(|e| e.into_inner());
                positions.stream_seq = positions.stream_seq.max(mark.stream_seq);
                let taken = positions
                    .taken
                    .entry(mark.origin.clone())
                    .or_default()
                    .entry(mark.subject.clone())
                    .or_default();
                *taken = (*taken).max(mark.origin_seq);
                drop(positions);
                self.generation.fetch_add(1, Ordering::Relaxed);
                return;
            }
            _ => match result_span(record) {
                Some(span) => (&span.device.name, span.end_ns, span.energy),
                None => return,
            },
        };
        let mut meters = self.lock();
        let state = match meters.get_mut(name.as_ref()) {
            Some(state) => state,
            None => meters.entry(name.to_string()).or_default(),
        };
        if let Some(energy) = energy {
            state.energy = energy.clone();
        }
        state.covered_until_ns = Some(state.covered_until_ns.map_or(end_ns, |c| c.max(end_ns)));
        state.windows += 1;
        drop(meters);
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a new sampling session of `meter`.
    pub fn note_session(&self, meter: &str) {
        self.lock().entry(meter.to_string()).or_default().sessions += 1;
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// After an unclean stop: every known meter's results after its
    /// coverage were lost, up to whatever it sends next.
    pub fn mark_crashed(&self) {
        let meters = self.lock();
        for (name, state) in meters.iter() {
            if let Some(covered) = state.covered_until_ns {
                self.mark_lost(name, covered, "the sink stopped before they were durable");
            }
        }
    }

    /// Notes that `meter`'s results after `since_ns` were lost; its next
    /// window records the span. Of two losses the earlier start is kept.
    pub fn mark_lost(&self, meter: &str, since_ns: i64, why: &str) {
        let mut lost = self.lost_since.lock().unwrap_or_else(|e| e.into_inner());
        match lost.get_mut(meter) {
            Some((since, _)) if *since <= since_ns => {}
            Some(known) => *known = (since_ns, why.to_string()),
            None => {
                lost.insert(meter.to_string(), (since_ns, why.to_string()));
            }
        }
    }

    /// How far a writer has read the cluster's stream.
    pub fn positions(&self) -> StreamPositions {
        self.positions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Takes the registers a meter's records left in the cluster (it
    /// connected here, last streamed to `from_node`), unless this node's own
    /// state is as far. A move from another node loses what that node had
    /// computed but not yet published: recorded like a crash.
    pub fn adopt(
        &self,
        meter: &str,
        energy: EnergyCounters,
        covered_until_ns: i64,
        from_node: &str,
        this_node: &str,
    ) {
        let mut meters = self.lock();
        let state = meters.entry(meter.to_string()).or_default();
        if state
            .covered_until_ns
            .is_some_and(|c| c >= covered_until_ns)
        {
            return;
        }
        state.energy = energy;
        state.covered_until_ns = Some(covered_until_ns);
        drop(meters);
        self.generation.fetch_add(1, Ordering::Relaxed);
        if from_node != this_node {
            self.lost_since.lock().unwrap_or_else(|e| e.into_inner()).insert(
                meter.to_string(),
                (
                    covered_until_ns,
                    format!("the meter moved here from node {from_node}, whose results after that were not published"),
                ),
            );
        }
    }

    /// The `lost_results` event to record before `record`, when it is the
    /// first window of a meter whose results were lost in a crash.
    pub fn loss_before(&self, record: &crate::model::Record) -> Option<crate::model::EventRow> {
        let span = result_span(record)?;
        let mut lost = self.lost_since.lock().unwrap_or_else(|e| e.into_inner());
        if lost.is_empty() {
            return None;
        }
        let (since, why) = lost.remove(span.device.name.as_ref())?;
        lost_results_row(span.device, since, span.start_ns, &why)
    }

    /// Forgets meters not seen for `max_idle` (their state, their coverage).
    pub fn evict_idle(&self, now_ns: i64, max_idle_ns: i64) -> Vec<String> {
        let mut meters = self.lock();
        let idle: Vec<String> = meters
            .iter()
            .filter(|(_, s)| {
                s.covered_until_ns
                    .is_some_and(|c| now_ns.saturating_sub(c) > max_idle_ns)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in &idle {
            meters.remove(name);
        }
        if !idle.is_empty() {
            self.generation.fetch_add(1, Ordering::Relaxed);
        }
        idle
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, MeterState>> {
        self.meters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

use crate::model::stream_positions::StreamPositions;
use crate::sink::atomic_file::write_atomically;
use crate::source::component::MeterStates;

/// The meter time a result record covers, and the registers after it.
pub struct ResultSpan<'a> {
    pub device: &'a crate::model::DeviceInfo,
    pub start_ns: i64,
    pub end_ns: i64,
    pub energy: Option<&'a EnergyCounters>,
}

/// The span of a window or latch record; `None` for other kinds.
pub fn result_span(record: &crate::model::Record) -> Option<ResultSpan<'_>> {
    use crate::model::Record;
    match record {
        Record::Window(row) => Some(ResultSpan {
            device: &row.device,
            start_ns: row.metrics.start_unix_ns,
            end_ns: row.metrics.end_unix_ns,
            energy: row.energy.as_ref(),
        }),
        Record::Latch(row) => Some(ResultSpan {
            device: &row.device,
            start_ns: row.window.start_unix_ns,
            end_ns: row.window.end_unix_ns,
            energy: row.energy.as_ref(),
        }),
        _ => None,
    }
}

/// The `lost_results` row for `device` from `since_ns` to `until_ns`
/// (`None` when that span is empty).
pub fn lost_results_row(
    device: &crate::model::DeviceInfo,
    since_ns: i64,
    until_ns: i64,
    why: &str,
) -> Option<crate::model::EventRow> {
    use crate::model::{EventRow, EventRowKind};
    let seconds = (until_ns - since_ns) as f64 / 1e9;
    (seconds > 0.0).then(|| EventRow {
        device: device.clone(),
        time_unix_ns: since_ns,
        kind: EventRowKind::LostResults,
        lost_chunks: None,
        lost_samples: None,
        bytes: None,
        message: format!(
            "lost_results: no results from {} to {} ({seconds:.3} s): {why}",
            format_ns(since_ns),
            format_ns(until_ns)
        ),
    })
}

fn format_ns(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

impl MeterStates for StateStore {
    fn adopt(
        &self,
        meter: &str,
        energy: EnergyCounters,
        covered_until_ns: i64,
        from_node: &str,
        this_node: &str,
    ) {
        StateStore::adopt(self, meter, energy, covered_until_ns, from_node, this_node)
    }

    fn evict_idle(&self, now_ns: i64, max_idle_ns: i64) -> Vec<String> {
        StateStore::evict_idle(self, now_ns, max_idle_ns)
    }

    fn positions(&self) -> StreamPositions {
        StateStore::positions(self)
    }
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

    fn window(name: &str, start_ns: i64, import_wh: f64) -> crate::model::Record {
        use crate::model::{DeviceInfo, Record, WindowRow};
        let mut energy = EnergyCounters::default();
        energy.total.import_wh = import_wh;
        let metrics = crate::model::WindowMetrics {
            start_unix_ns: start_ns,
            end_unix_ns: start_ns + 200_000_000,
            ..Default::default()
        };
        Record::Window(WindowRow {
            device: DeviceInfo::new(name, 1, crate::wire::Measures::ThreePhase),
            metrics,
            energy: Some(energy),
        })
    }

    #[test]
    fn state_follows_the_records_and_a_crash_records_the_lost_span_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        store.apply(&window("m1", 1_000_000_000, 1.5));
        store.apply(&window("m1", 1_200_000_000, 2.5));
        let state = store.get("m1").unwrap();
        assert_eq!(state.energy.total.import_wh, 2.5);
        assert_eq!(state.covered_until_ns, Some(1_400_000_000));
        assert_eq!(state.windows, 2);

        // A snapshot restores exactly that.
        let bytes = store.encode().unwrap();
        let restored = StateStore::open(dir.path()).unwrap();
        restored.restore(&bytes).unwrap();
        assert_eq!(restored.get("m1"), Some(state));

        restored.mark_crashed();
        let next = window("m1", 4_400_000_000, 3.0);
        let lost = restored.loss_before(&next).unwrap();
        assert_eq!(lost.kind, crate::model::EventRowKind::LostResults);
        assert_eq!(lost.time_unix_ns, 1_400_000_000);
        assert!(lost.message.contains("3.000 s"), "{}", lost.message);
        assert!(restored.loss_before(&next).is_none(), "recorded once");

        // Gone for longer than the age: forgotten.
        assert_eq!(
            restored.evict_idle(1_400_000_000 + 10_000_000_000, 5_000_000_000),
            ["m1"]
        );
        assert!(restored.is_empty());
    }

    #[test]
    fn a_damaged_checkpoint_is_ignored_and_rewritten_by_the_next_save() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CHECKPOINT_FILE);
        for damaged in [&b""[..], b"{\"version\":1,\"mete", b"\x00\xffgarbage"] {
            std::fs::write(&path, damaged).unwrap();
            let store = StateStore::open(dir.path()).unwrap();
            assert!(store.is_empty(), "{damaged:?}");
        }
        let store = StateStore::open(dir.path()).unwrap();
        store.apply(&window("m1", 1_000_000_000, 4.25));
        assert!(store.save().unwrap());
        let reopened = StateStore::open(dir.path()).unwrap();
        assert_eq!(reopened.get("m1"), store.get("m1"));
    }

    #[test]
    fn a_checkpoint_of_another_format_version_is_still_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CHECKPOINT_FILE),
            br#"{"version":99,"written_unix_ns":0,"meters":{}}"#,
        )
        .unwrap();
        let error = format!("{:#}", StateStore::open(dir.path()).unwrap_err());
        assert!(error.contains("format version 99"), "{error}");
    }

    #[test]
    fn of_two_losses_of_a_meter_the_earlier_start_is_recorded() {
        let store = StateStore::in_memory();
        store.mark_lost("m1", 3_000_000_000, "later");
        store.mark_lost("m1", 2_000_000_000, "a hole in the record log");
        store.mark_lost("m1", 2_500_000_000, "between");
        let lost = store
            .loss_before(&window("m1", 4_000_000_000, 1.0))
            .unwrap();
        assert_eq!(lost.time_unix_ns, 2_000_000_000);
        assert!(
            lost.message.contains("(2.000 s): a hole"),
            "{}",
            lost.message
        );
    }
}
