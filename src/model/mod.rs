//! The shared vocabulary of the pipeline: the records that flow from the
//! sources and the engine to the outputs, who they belong to, and the
//! measurand keys. Sources, the engine's callers and outputs depend on this
//! module, not on each other.

pub mod device;
pub mod intern;
pub mod measurand;
pub mod mppt;
pub mod reading;
pub mod record;
pub mod rows;
pub mod sensor;

pub use device::DeviceInfo;
pub use measurand::{keys, MeasurandValue};
pub use mppt::{Channel, MpptRecord, MpptStatus};
pub use reading::{Reading, Value};
pub use record::{ConsumedMark, RawBlock, Record, TelemetryBatch};
pub use rows::{
    AggregateRow, EventKind, EventRow, HalfCycleRow, IntervalKind, LatchRow, PinstRow, PqEventRow,
    WindowRow,
};
pub use sensor::{
    CircuitReading, IntervalReadings, KeyedValue, SensorInfo, SensorInterval, SensorReadings,
};
