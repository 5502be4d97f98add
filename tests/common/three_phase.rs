//! A clean three-phase test signal with analytic truth: 50 Hz, 230 V / 10 A
//! per phase, currents in phase with their voltages, at 8 kHz; and its
//! bytes as a bare f32le capture (`batch --rate --measures --start --name`).
#![allow(dead_code)]

use std::ops::Range;

pub const RATE: u32 = 8000;
pub const V_RMS: f64 = 230.0;
pub const I_RMS: f64 = 10.0;
/// Three phases of 230 V × 10 A in phase.
pub const P_TOTAL_W: f64 = 3.0 * V_RMS * I_RMS;
/// The layout for `--measures`.
pub const MEASURES: &str = "v,i,v,i,v,i";
/// A value a test plants as a spike; written to the wire as it is.
pub const SPIKE: f32 = 1e20;

/// `seconds` of the signal in SI units, one vector per channel (V L1, I L1, …).
pub fn clean_channels(seconds: f64) -> Vec<Vec<f32>> {
    let n = (seconds * f64::from(RATE)).round() as usize;
    let mut channels: Vec<Vec<f32>> = (0..6).map(|_| Vec::with_capacity(n)).collect();
    for k in 0..n {
        let t = k as f64 / f64::from(RATE);
        for phase in 0..3 {
            let angle = std::f64::consts::TAU * (50.0 * t - phase as f64 / 3.0) + 0.3;
            let s = angle.sin() * std::f64::consts::SQRT_2;
            channels[2 * phase].push((V_RMS * s) as f32);
            channels[2 * phase + 1].push((I_RMS * s) as f32);
        }
    }
    channels
}

/// Samples `samples` of `channels` as interleaved f32le, currents in mA as
/// the wire carries them ([`SPIKE`] stays as it is).
pub fn wire_f32le(channels: &[Vec<f32>], samples: Range<usize>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(samples.len() * channels.len() * 4);
    for k in samples {
        for (c, channel) in channels.iter().enumerate() {
            let x = if c % 2 == 1 && channel[k] != SPIKE {
                channel[k] * 1000.0
            } else {
                channel[k]
            };
            bytes.extend_from_slice(&x.to_le_bytes());
        }
    }
    bytes
}
