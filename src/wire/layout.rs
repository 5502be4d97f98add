//! What a `measures` value means on the wire: which channels, in what order,
//! in which units. The firmware's `sample` handler is the authority here, not
//! the vendor guide (see `smartmeter-firmware-facts.md`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes of one channel value: every sample is an IEEE-754 float32.
pub const BYTES_PER_VALUE: usize = 4;

/// One of the three grid lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    L1,
    L2,
    L3,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::L1, Phase::L2, Phase::L3];

    /// Zero-based index (L1 = 0).
    pub fn index(self) -> usize {
        match self {
            Phase::L1 => 0,
            Phase::L2 => 1,
            Phase::L3 => 2,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::L1 => "L1",
            Phase::L2 => "L2",
            Phase::L3 => "L3",
        })
    }
}

/// What a channel measures. Waveform channels carry instantaneous values;
/// latch channels carry values the meter already averaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quantity {
    /// Instantaneous voltage, V.
    Voltage,
    /// Instantaneous current, A after decoding (mA on the wire).
    Current,
    /// Active power, W.
    ActivePower,
    /// Reactive power, var.
    ReactivePower,
    /// RMS voltage, V.
    VoltageRms,
    /// RMS current, A after decoding (mA on the wire).
    CurrentRms,
}

/// One channel of a layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Channel {
    /// Column-friendly name, e.g. `v_l1`.
    pub name: &'static str,
    pub quantity: Quantity,
    pub phase: Phase,
    /// Unit as the meter announces it in the sample answer's `unit`.
    pub wire_unit: &'static str,
    /// SI unit after decoding.
    pub si_unit: &'static str,
}

impl Channel {
    /// Divisor from the wire value to SI: currents arrive in mA. A division
    /// (not a multiplication by 1e-3) keeps `1500 mA` exactly `1.5 A`.
    pub fn si_divisor(&self) -> f32 {
        if self.wire_unit == "mA" {
            1000.0
        } else {
            1.0
        }
    }
}

const fn ch(
    name: &'static str,
    quantity: Quantity,
    phase: Phase,
    wire_unit: &'static str,
    si_unit: &'static str,
) -> Channel {
    Channel {
        name,
        quantity,
        phase,
        wire_unit,
        si_unit,
    }
}

use Phase::{L1, L2, L3};
use Quantity::{ActivePower, Current, CurrentRms, ReactivePower, Voltage, VoltageRms};

static THREE_PHASE: [Channel; 6] = [
    ch("v_l1", Voltage, L1, "V", "V"),
    ch("i_l1", Current, L1, "mA", "A"),
    ch("v_l2", Voltage, L2, "V", "V"),
    ch("i_l2", Current, L2, "mA", "A"),
    ch("v_l3", Voltage, L3, "V", "V"),
    ch("i_l3", Current, L3, "mA", "A"),
];
static PHASE_L1: [Channel; 2] = [
    ch("v_l1", Voltage, L1, "V", "V"),
    ch("i_l1", Current, L1, "mA", "A"),
];
static PHASE_L2: [Channel; 2] = [
    ch("v_l2", Voltage, L2, "V", "V"),
    ch("i_l2", Current, L2, "mA", "A"),
];
static PHASE_L3: [Channel; 2] = [
    ch("v_l3", Voltage, L3, "V", "V"),
    ch("i_l3", Current, L3, "mA", "A"),
];
static POWER_LATCH: [Channel; 6] = [
    ch("p_l1", ActivePower, L1, "W", "W"),
    ch("p_l2", ActivePower, L2, "W", "W"),
    ch("p_l3", ActivePower, L3, "W", "W"),
    ch("q_l1", ReactivePower, L1, "VAR", "var"),
    ch("q_l2", ReactivePower, L2, "VAR", "var"),
    ch("q_l3", ReactivePower, L3, "VAR", "var"),
];
static RMS_LATCH: [Channel; 6] = [
    ch("v_rms_l1", VoltageRms, L1, "V", "V"),
    ch("v_rms_l2", VoltageRms, L2, "V", "V"),
    ch("v_rms_l3", VoltageRms, L3, "V", "V"),
    ch("i_rms_l1", CurrentRms, L1, "mA", "A"),
    ch("i_rms_l2", CurrentRms, L2, "mA", "A"),
    ch("i_rms_l3", CurrentRms, L3, "mA", "A"),
];

/// The `measures` values the firmware accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Measures {
    /// Omitted or `"v,i,v,i,v,i"`: voltage and current of all three phases.
    #[default]
    ThreePhase,
    /// `"v,i"`: phase L1 only (the guide's "3 phases" is wrong).
    SinglePhase,
    /// `"v,i_L1"`, `"v,i_L2"`, `"v,i_L3"`: voltage and current of that phase.
    Phase(Phase),
    /// `"p,q"`: active and reactive power per phase (latch mode).
    PowerLatch,
    /// `"v,i_RMS"`: RMS voltage and current per phase (latch mode).
    RmsLatch,
}

impl Measures {
    /// Every value, for exhaustive tests and help texts.
    pub const ALL: [Measures; 7] = [
        Measures::ThreePhase,
        Measures::SinglePhase,
        Measures::Phase(L1),
        Measures::Phase(L2),
        Measures::Phase(L3),
        Measures::PowerLatch,
        Measures::RmsLatch,
    ];

    /// The string a `sample` command carries; parsing accepts exactly what the
    /// firmware accepts. The sample answer echoes some in a long form (e.g.
    /// `p,p,p,q,q,q`): see `message::parse_measures_echo`.
    pub fn as_str(self) -> &'static str {
        match self {
            Measures::ThreePhase => "v,i,v,i,v,i",
            Measures::SinglePhase => "v,i",
            Measures::Phase(L1) => "v,i_L1",
            Measures::Phase(L2) => "v,i_L2",
            Measures::Phase(L3) => "v,i_L3",
            Measures::PowerLatch => "p,q",
            Measures::RmsLatch => "v,i_RMS",
        }
    }

    /// The channels, in wire order.
    pub fn channels(self) -> &'static [Channel] {
        match self {
            Measures::ThreePhase => &THREE_PHASE,
            Measures::SinglePhase | Measures::Phase(L1) => &PHASE_L1,
            Measures::Phase(L2) => &PHASE_L2,
            Measures::Phase(L3) => &PHASE_L3,
            Measures::PowerLatch => &POWER_LATCH,
            Measures::RmsLatch => &RMS_LATCH,
        }
    }

    /// Float values per sample (the sample answer's `measurements`).
    pub fn channel_count(self) -> usize {
        self.channels().len()
    }

    /// Bytes of one interleaved sample on the wire.
    pub fn bytes_per_sample(self) -> usize {
        self.channel_count() * BYTES_PER_VALUE
    }

    /// The sample answer's `unit` string, e.g. `V,mA,V,mA,V,mA`.
    pub fn unit_string(self) -> String {
        let units: Vec<&str> = self.channels().iter().map(|c| c.wire_unit).collect();
        units.join(",")
    }

    /// Latch modes deliver pre-averaged values at no more than 50 Hz.
    pub fn is_latch(self) -> bool {
        matches!(self, Measures::PowerLatch | Measures::RmsLatch)
    }

    /// Highest output rate the firmware allows for this layout.
    pub fn max_rate(self) -> u32 {
        if self.is_latch() {
            MAX_LATCH_RATE
        } else {
            MAX_WAVEFORM_RATE
        }
    }

    /// The phases this layout carries, in ascending order.
    pub fn phases(self) -> Vec<Phase> {
        let mut phases: Vec<Phase> = self.channels().iter().map(|c| c.phase).collect();
        phases.sort();
        phases.dedup();
        phases
    }
}

/// The meter's sampling clock: waveform rates must divide it.
pub const MAX_WAVEFORM_RATE: u32 = 32_000;
/// Latch layouts output at most this many values per second.
pub const MAX_LATCH_RATE: u32 = 50;
/// The firmware's default sampling rate.
pub const DEFAULT_RATE: u32 = 8_000;

/// Why a rate or layout was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("unknown measures value {0:?} (expected one of v,i,v,i,v,i | v,i | v,i_L1 | v,i_L2 | v,i_L3 | p,q | v,i_RMS)")]
    UnknownMeasures(String),
    #[error("sampling rate {rate} Hz is out of range for measures {measures} (1..={max} Hz)")]
    RateOutOfRange {
        rate: u32,
        measures: &'static str,
        max: u32,
    },
    #[error("sampling rate {0} Hz does not divide the meter's 32000 Hz clock")]
    RateNotDivisor(u32),
}

impl Measures {
    /// Checks a rate the way the firmware does before it starts sampling.
    pub fn validate_rate(self, rate: u32) -> Result<(), LayoutError> {
        if rate == 0 || rate > self.max_rate() {
            return Err(LayoutError::RateOutOfRange {
                rate,
                measures: self.as_str(),
                max: self.max_rate(),
            });
        }
        if !self.is_latch() && !MAX_WAVEFORM_RATE.is_multiple_of(rate) {
            return Err(LayoutError::RateNotDivisor(rate));
        }
        Ok(())
    }
}

impl FromStr for Measures {
    type Err = LayoutError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "" | "v,i,v,i,v,i" => Measures::ThreePhase,
            "v,i" => Measures::SinglePhase,
            "v,i_L1" => Measures::Phase(L1),
            "v,i_L2" => Measures::Phase(L2),
            "v,i_L3" => Measures::Phase(L3),
            "p,q" => Measures::PowerLatch,
            "v,i_RMS" => Measures::RmsLatch,
            other => return Err(LayoutError::UnknownMeasures(other.to_string())),
        })
    }
}

impl fmt::Display for Measures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Measures {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Measures {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// In pipeline files a layout is one of the strings the firmware knows.
impl schemars::JsonSchema for Measures {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Measures".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = [
            Measures::ThreePhase,
            Measures::SinglePhase,
            Measures::Phase(L1),
            Measures::Phase(L2),
            Measures::Phase(L3),
            Measures::PowerLatch,
            Measures::RmsLatch,
        ]
        .iter()
        .map(|m| m.as_str())
        .collect();
        schemars::json_schema!({ "type": "string", "enum": names })
    }
}

/// Transport of a sampling session; chunk sizes depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    #[default]
    Tcp,
    Udp,
    Serial,
}

/// The firmware's `calcChunkSize`: about 0.1 s of data, clamped to 1024 bytes,
/// rounded up to a power of two, capped at 512 for UDP; USB always uses 128;
/// then rounded down to whole samples.
pub fn chunk_size(rate: u32, bytes_per_sample: usize, transport: Transport) -> usize {
    let wanted = (0.1 * f64::from(rate) * bytes_per_sample as f64) as usize;
    let clamped = wanted.clamp(1, 1024).next_power_of_two();
    let capped = match transport {
        Transport::Tcp => clamped,
        Transport::Udp => clamped.min(512),
        Transport::Serial => 128,
    };
    let whole = capped - capped % bytes_per_sample;
    whole.max(bytes_per_sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_table_layouts() {
        assert_eq!(Measures::ThreePhase.unit_string(), "V,mA,V,mA,V,mA");
        assert_eq!(Measures::ThreePhase.bytes_per_sample(), 24);
        assert_eq!(Measures::SinglePhase.bytes_per_sample(), 8);
        assert_eq!(Measures::SinglePhase.phases(), vec![L1]);
        assert_eq!(Measures::Phase(L3).channels()[0].name, "v_l3");
        assert_eq!(Measures::PowerLatch.unit_string(), "W,W,W,VAR,VAR,VAR");
        assert_eq!(Measures::RmsLatch.unit_string(), "V,V,V,mA,mA,mA");
        let names: Vec<_> = Measures::ThreePhase
            .channels()
            .iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["v_l1", "i_l1", "v_l2", "i_l2", "v_l3", "i_l3"]);
    }

    #[test]
    fn measures_strings_round_trip() {
        for m in Measures::ALL {
            assert_eq!(m.as_str().parse::<Measures>(), Ok(m));
        }
        assert_eq!("".parse::<Measures>(), Ok(Measures::ThreePhase));
        assert!("v,i,x".parse::<Measures>().is_err());
        // Long echo forms are not accepted as input, as in the firmware.
        assert!("p,p,p,q,q,q".parse::<Measures>().is_err());
    }

    #[test]
    fn chunk_size_examples_from_the_facts_page() {
        assert_eq!(chunk_size(8000, 24, Transport::Tcp), 1008);
        assert_eq!(chunk_size(8000, 8, Transport::Tcp), 1024);
        assert_eq!(chunk_size(8000, 24, Transport::Udp), 504);
        // 1 Hz, 2 channels: 0.8 bytes -> 1 -> whole sample of 8 bytes.
        assert_eq!(chunk_size(1, 8, Transport::Tcp), 8);
        // 4 kHz 6 channels: 9600 -> 1024 -> 1008.
        assert_eq!(chunk_size(4000, 24, Transport::Tcp), 1008);
        // 50 Hz latch: 120 bytes -> 128 -> 120.
        assert_eq!(chunk_size(50, 24, Transport::Tcp), 120);
        // USB: always 128 bytes, whole samples.
        assert_eq!(chunk_size(1, 8, Transport::Serial), 128);
        assert_eq!(chunk_size(8000, 24, Transport::Serial), 120);
    }

    #[test]
    fn rates_are_checked_like_the_firmware() {
        assert!(Measures::ThreePhase.validate_rate(8000).is_ok());
        assert!(Measures::ThreePhase.validate_rate(32000).is_ok());
        assert!(Measures::ThreePhase.validate_rate(7000).is_err());
        assert!(Measures::ThreePhase.validate_rate(0).is_err());
        assert!(Measures::PowerLatch.validate_rate(50).is_ok());
        assert!(Measures::PowerLatch.validate_rate(51).is_err());
        assert_eq!(Measures::Phase(L1).channels()[1].si_divisor(), 1000.0);
    }
}
