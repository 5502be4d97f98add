//! The normalised reading every telemetry adapter produces, so the packet
//! output and the `readings` table need not know where a number came from.

use super::measurand::MeasurandValue;

/// A reading's value: SI number, text, or a flag.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Text(String),
    Bool(bool),
}

/// One keyed value of one device at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Adapter: `rtl_433`, `mppt` or `airlink`.
    pub source: &'static str,
    /// Device identity (also the `device=` partition and the sensor id seed).
    pub device: String,
    /// The device's model, when the input names one (`MODEL` measurand).
    pub model: Option<String>,
    /// When the value was measured, ns since the epoch (UTC). For a value
    /// accumulated over a window, the window's end.
    pub time_ns: i64,
    /// Start of the window of an accumulated value (AirLink energy).
    pub span_start_ns: Option<i64>,
    /// Normalised key: `<quantity>_<SI unit>` where a unit is known.
    pub key: String,
    pub value: Value,
    pub unit: Option<&'static str>,
    /// The BetterFleet standard key the value maps to, if any.
    pub standard: Option<&'static str>,
}
impl Value {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(v) => Some(*v),
            _ => None,
        }
    }

    /// The packet form; a non-finite number becomes `null` there.
    pub fn to_measurand(&self) -> MeasurandValue {
        match self {
            Value::Number(v) => MeasurandValue::number(Some(*v)),
            Value::Text(s) => MeasurandValue::Text(s.clone()),
            Value::Bool(b) => MeasurandValue::Json(serde_json::Value::Bool(*b)),
        }
    }
}

impl Reading {
    /// A reading with no unit, standard key or window.
    pub fn new(
        source: &'static str,
        device: &str,
        time_ns: i64,
        key: impl Into<String>,
        value: Value,
    ) -> Self {
        Reading {
            source,
            device: device.to_owned(),
            model: None,
            time_ns,
            span_start_ns: None,
            key: key.into(),
            value,
            unit: None,
            standard: None,
        }
    }

    pub fn with_unit(mut self, unit: &'static str) -> Self {
        self.unit = Some(unit);
        self
    }

    pub fn with_standard(mut self, standard: &'static str) -> Self {
        self.standard = Some(standard);
        self
    }

    pub fn with_model(mut self, model: Option<String>) -> Self {
        self.model = model;
        self
    }
}
