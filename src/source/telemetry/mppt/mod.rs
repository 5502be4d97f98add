//! MPPT charge-controller telemetry (Sundaya "monitored equipment" API,
//! `tel_mppt`): the status decoder, the body parser, the readings a record
//! gives, and the HTTP endpoint.

pub mod body;
pub mod server;
pub mod status;

pub use body::parse_body;

use crate::model::mppt::{round4, Channel, MpptRecord};
use crate::model::{keys, Reading, Value};

pub const SOURCE: &str = "mppt";

/// Readings of one record: PV power, battery power and voltage, load power
/// (the total load) and the charging state.
pub fn readings(record: &MpptRecord) -> Vec<Reading> {
    let at = |key: &str, value: Value| {
        Reading::new(SOURCE, &record.mppt_id, record.time_event_ns, key, value)
            .with_model(Some("mppt".to_owned()))
    };
    let sum = |channels: &[Channel]| round4(channels.iter().map(|c| c.watts).sum());
    vec![
        at("pv_power_W", Value::Number(sum(&record.pv))).with_unit("W"),
        at("battery_power_W", Value::Number(record.battery.watts)).with_unit("W"),
        at("battery_voltage_V", Value::Number(record.battery.volts)).with_unit("V"),
        at("load_power_W", Value::Number(sum(&record.load)))
            .with_unit("W")
            .with_standard(keys::TOTAL_POWER_LOAD),
        at("charging", Value::Text(record.status.charging.to_owned())),
    ]
}
