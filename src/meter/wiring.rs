//! Installation mistakes of the virtual meter: which grid conductor each of
//! its voltage and current inputs is really on, so tests and the demo can
//! show what the wiring checks find. The signal's truth follows the mapping
//! (see [`ChannelSource`]), so every fault has analytic phasors.

use serde::{Deserialize, Serialize};

use super::signal::SignalError;

/// How the meter is connected; the default is correct wiring.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WiringConfig {
    /// Grid phase (1..=3) whose conductor the clamp of meter input L1, L2, L3
    /// sits on; empty: each on its own phase. `[2, 1, 3]`: L1 and L2 clamps swapped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub clamp_phases: Vec<u8>,
    /// Meter phases (1..=3) whose clamp faces the wrong way: the current reads negated.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reversed_clamps: Vec<u8>,
    /// Meter inputs L2 and L3 (voltage taps and clamps together) are on grid
    /// L3 and L2: the meter sees a negative phase sequence.
    pub swapped_phase_order: bool,
    /// Meter phases (1..=3) whose voltage tap is not connected: 0 V.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_voltages: Vec<u8>,
    /// Meter phases (1..=3) whose clamp is on no conductor (left off): 0 A.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub empty_clamps: Vec<u8>,
}

/// What one meter phase's inputs are connected to: grid phase indices
/// (0 = L1), `None` when the input carries nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelSource {
    pub voltage: Option<usize>,
    pub current: Option<usize>,
    /// The clamp faces the wrong way.
    pub reversed: bool,
}

impl WiringConfig {
    pub fn is_correct(&self) -> bool {
        *self == WiringConfig::default()
    }

    /// Refuses phase numbers outside 1..=3 and a clamp list of the wrong length.
    pub fn validate(&self) -> Result<(), SignalError> {
        let bad = |reason| Err(SignalError::BadWiring { reason });
        if !self.clamp_phases.is_empty() && self.clamp_phases.len() != 3 {
            return bad("clamp_phases needs 3 entries (one per meter input L1, L2, L3)");
        }
        let lists = [
            &self.clamp_phases,
            &self.reversed_clamps,
            &self.missing_voltages,
            &self.empty_clamps,
        ];
        if lists.iter().any(|l| l.iter().any(|p| !(1..=3).contains(p))) {
            return bad("phases are numbered 1..=3");
        }
        Ok(())
    }

    /// What each meter phase L1, L2, L3 measures.
    pub fn sources(&self) -> [ChannelSource; 3] {
        let listed = |list: &[u8], k: usize| list.iter().any(|&p| usize::from(p) == k + 1);
        let mut sources = [0, 1, 2].map(|k| ChannelSource {
            voltage: Some(k),
            current: Some(
                self.clamp_phases
                    .get(k)
                    .map_or(k, |&p| usize::from(p).saturating_sub(1)),
            ),
            reversed: false,
        });
        if self.swapped_phase_order {
            sources.swap(1, 2);
        }
        for (k, source) in sources.iter_mut().enumerate() {
            source.reversed = listed(&self.reversed_clamps, k);
            if listed(&self.missing_voltages, k) {
                source.voltage = None;
            }
            if listed(&self.empty_clamps, k) {
                source.current = None;
            }
        }
        sources
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_compose_into_channel_sources() {
        let wiring = WiringConfig {
            clamp_phases: vec![2, 1, 3],
            reversed_clamps: vec![3],
            swapped_phase_order: true,
            missing_voltages: vec![1],
            empty_clamps: vec![],
        };
        let s = wiring.sources();
        assert_eq!(
            (s[0].voltage, s[0].current, s[0].reversed),
            (None, Some(1), false)
        );
        // Meter L2 is on grid L3 (tap and clamp), meter L3 on grid L2 with its
        // clamp on grid L1 (the clamp swap) and reversed.
        assert_eq!(
            (s[1].voltage, s[1].current, s[1].reversed),
            (Some(2), Some(2), false)
        );
        assert_eq!(
            (s[2].voltage, s[2].current, s[2].reversed),
            (Some(1), Some(0), true)
        );
        assert!(WiringConfig::default().is_correct());
        assert_eq!(
            WiringConfig::default()
                .sources()
                .map(|s| (s.voltage, s.current)),
            [(Some(0), Some(0)), (Some(1), Some(1)), (Some(2), Some(2))]
        );
    }

    #[test]
    fn bad_phases_are_refused() {
        let mut wiring = WiringConfig {
            reversed_clamps: vec![4],
            ..WiringConfig::default()
        };
        assert!(wiring.validate().is_err());
        wiring.reversed_clamps = vec![2];
        assert!(wiring.validate().is_ok());
        wiring.clamp_phases = vec![1, 2];
        assert!(wiring.validate().is_err());
        wiring.clamp_phases = vec![0, 2, 3];
        assert!(wiring.validate().is_err());
    }
}
