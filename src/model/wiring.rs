//! A meter's wiring status: what the wiring checks concluded about how its
//! voltage taps and current clamps are connected, for events, summaries and
//! the live view.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What the checks found, most serious first (the order they are tried in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WiringReason {
    /// Nothing found.
    Ok,
    /// No voltage on any phase: nothing could be checked.
    Unchecked,
    /// One voltage input reads (almost) nothing while the others do: its tap
    /// is off or its fuse is out.
    MissingVoltage,
    /// A voltage far from every standard nominal: a wrong scaling or a
    /// line-to-line connection.
    VoltageOffNominal,
    /// The voltages rotate L1 → L3 → L2: two phases are swapped.
    NegativeSequence,
    /// A clamp reads (almost) nothing while the others carry current.
    EmptyClamp,
    /// A current lines up with another phase's voltage rather than its own.
    ClampOnWrongPhase,
    /// A current sits about 180° from where the others' are: its power flows
    /// against theirs.
    ReversedClamp,
}

impl WiringReason {
    pub fn as_str(self) -> &'static str {
        match self {
            WiringReason::Ok => "ok",
            WiringReason::Unchecked => "unchecked",
            WiringReason::MissingVoltage => "missing_voltage",
            WiringReason::VoltageOffNominal => "voltage_off_nominal",
            WiringReason::NegativeSequence => "negative_sequence",
            WiringReason::EmptyClamp => "empty_clamp",
            WiringReason::ClampOnWrongPhase => "clamp_on_wrong_phase",
            WiringReason::ReversedClamp => "reversed_clamp",
        }
    }

    /// A fault an installer should look at (not `ok`, not `unchecked`).
    pub fn is_fault(self) -> bool {
        !matches!(self, WiringReason::Ok | WiringReason::Unchecked)
    }
}

/// One conclusion of the wiring checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WiringStatus {
    pub reason: WiringReason,
    /// Meter phase it is about (0 = L1); `None` for the whole meter.
    pub phase: Option<u8>,
    /// How clearly the evidence passed its threshold, 0..=1 (1: textbook).
    pub confidence: f64,
    /// The measured values behind it, for a person.
    pub detail: String,
}

impl WiringStatus {
    /// Same finding (reason and phase), whatever the confidence.
    pub fn same_finding(&self, other: &WiringStatus) -> bool {
        self.reason == other.reason && self.phase == other.phase
    }
}

/// The finding a `wiring` events row's message names (`reversed_clamp L2`
/// of `reversed_clamp L2 (confidence 1.00): …`), and whether it is a fault.
pub fn finding_of(message: &str) -> (&str, bool) {
    let finding = message.split(" (confidence").next().unwrap_or(message);
    let fault = finding != WiringReason::Ok.as_str() && finding != WiringReason::Unchecked.as_str();
    (finding, fault)
}

impl fmt::Display for WiringStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason.as_str())?;
        if let Some(phase) = self.phase {
            write!(f, " L{}", u16::from(phase) + 1)?;
        }
        write!(f, " (confidence {:.2}): {}", self.confidence, self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(reason: WiringReason, phase: Option<u8>) -> String {
        WiringStatus {
            reason,
            phase,
            confidence: 0.75,
            detail: "measured: a (b) c".to_string(),
        }
        .to_string()
    }

    #[test]
    fn the_finding_is_read_back_from_the_message_a_status_writes() {
        let reversed = message(WiringReason::ReversedClamp, Some(1));
        assert_eq!(finding_of(&reversed), ("reversed_clamp L2", true));
        let whole = message(WiringReason::VoltageOffNominal, None);
        assert_eq!(finding_of(&whole), ("voltage_off_nominal", true));
        assert_eq!(finding_of(&message(WiringReason::Ok, None)), ("ok", false));
        let unchecked = message(WiringReason::Unchecked, None);
        assert_eq!(finding_of(&unchecked), ("unchecked", false));
    }
}
