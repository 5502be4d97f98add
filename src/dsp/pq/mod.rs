//! Power quality per `shared/specs/power-quality.md` (IEC 61000-4-30 §5.4,
//! §5.11, §4.7): half-cycle RMS `Urms(1/2)`, dips, swells, interruptions,
//! rapid voltage changes, and the flag for windows that overlap them.
//!
//! [`PqDetector`] takes each block's voltage samples with the crossings the
//! engine's zero-crossing detector found; the engine runs it when `[dsp.pq]`
//! is configured, [`PqStream`] runs it on its own.

mod config;
mod cycle_clock;
mod detector;
pub mod flagging;
mod half_cycle;
mod rvc;
mod stream;
mod tally;
mod voltage_events;

pub use config::{PqConfig, PqConfigError, DEFAULT_UDIN_V};
pub use detector::{PqDetector, PqError, PqOutput};
pub use stream::PqStream;
pub use tally::{PqTally, PST_KEY};
