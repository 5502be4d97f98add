//! The shared vocabulary of the pipeline: the records that flow from the
//! sources and the engine to the outputs, who they belong to, and the
//! measurand keys. Sources, the engine's callers and outputs depend on this
//! module, not on each other.

pub mod aggregate;
pub mod backoff;
pub mod bounds;
pub mod clock;
pub mod device;
pub mod energy;
mod flag_set;
pub mod flicker;
pub mod identity;
pub mod intern;
pub mod latch;
pub mod latency;
pub mod measurand;
pub mod meter_registers;
pub mod metric;
pub mod mppt;
pub mod number;
pub mod partition;
pub mod pq_counts;
pub mod pq_event;
pub mod reading;
pub mod record;
pub mod rows;
pub mod run_report;
pub mod sensor;
pub mod stream_positions;
pub mod window;
pub mod wiring;

pub use aggregate::{Aggregate, PhaseAggregate, Stat};
pub use device::DeviceInfo;
pub use energy::{EnergyCounters, EnergyFlow};
pub use flicker::{FlickerFlags, PinstValue};
pub use latch::{LatchPhase, LatchWindow};
pub use measurand::{keys, MeasurandValue};
pub use mppt::{Channel, MpptRecord, MpptStatus};
pub use pq_event::{HalfCycleRms, PhaseSet, PqEvent, PqEventFlags, PqEventKind};
pub use reading::{Reading, Value};
pub use record::{ConsumedMark, RawBlock, Record, TelemetryBatch};
pub use rows::{
    AggregateRow, EventRow, EventRowKind, HalfCycleRow, IntervalKind, LatchRow, PinstRow,
    PqEventRow, WindowRow,
};
pub use sensor::{
    CircuitReading, IntervalReadings, KeyedValue, SensorInfo, SensorInterval, SensorReadings,
};
pub use window::{PhaseMetrics, Unbalance, WindowFlags, WindowMetrics};
pub use wiring::{WiringReason, WiringStatus};
