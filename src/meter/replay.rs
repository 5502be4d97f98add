//! Periodic signals synthesised once and replayed: when the fundamental's
//! frequency is an exact rational multiple of the sampling rate (50 Hz at
//! 8 kHz repeats every 160 samples), a segment's undisturbed waveform is a
//! table of one period, and sample n is entry n mod period. Tables are shared
//! process-wide between generators with the same waveform (a fleet's meters
//! differ only in their noise seed), so a thousand meters read one table.
//!
//! Replay is exact, not an approximation: entry m is what the generator
//! computes for sample m, and sample q·period + m has the same true phase.

use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;

/// Longest period replayed, samples (a table of it is 12 bytes per channel
/// and sample); longer ones are synthesised sample by sample.
pub(super) const MAX_PERIOD: u64 = 32_768;

/// Samples a replayed run may take from one slice of a table's bytes (a
/// whole chunk at the firmware's usual sizes and write periods).
pub(super) const REPLAY_RUN: usize = 4096;

/// The number of samples after which a fundamental of `frequency_hz`
/// sampled at `rate` repeats exactly, if that is at most [`MAX_PERIOD`].
/// Exact rational arithmetic on the f64's value: f = num / 2^k, and the
/// phase f·n / rate is a whole number of cycles first at n = den / gcd(num, den)
/// with den = 2^k · rate.
pub(super) fn repeat_period(frequency_hz: f64, rate: u32) -> Option<u64> {
    if !(frequency_hz.is_finite() && frequency_hz > 0.0) || rate == 0 {
        return None;
    }
    let bits = frequency_hz.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i64;
    let fraction = bits & ((1u64 << 52) - 1);
    let (mut mantissa, mut exponent) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1u64 << 52), biased - 1075)
    };
    let zeros = mantissa.trailing_zeros();
    mantissa >>= zeros;
    exponent += i64::from(zeros);
    let (num, den) = if exponent >= 0 {
        // A whole frequency: at most 2^63 here, as MAX_PERIOD needs no more.
        let shift = u32::try_from(exponent).ok().filter(|&s| s < 64)?;
        (u128::from(mantissa) << shift, 1u128)
    } else {
        let shift = u32::try_from(-exponent).ok().filter(|&s| s < 64)?;
        (u128::from(mantissa), 1u128 << shift)
    };
    let den = den * u128::from(rate);
    let period = den / gcd(num, den);
    u64::try_from(period).ok().filter(|&p| p <= MAX_PERIOD)
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// What a table's values depend on: two tables with equal keys are equal.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ReplayKey {
    pub frequency_bits: u64,
    pub rate: u32,
    pub channels: usize,
    /// Harmonic orders of the coefficients, ascending from 1.
    pub orders: Vec<u32>,
    /// The segment's waveform coefficients, as bits.
    pub coeff_bits: Vec<u64>,
}

/// One period of a segment's undisturbed waveform, interleaved in wire
/// order and units.
pub(super) struct ReplayTable {
    key: ReplayKey,
    pub period: usize,
    /// Before modulation and noise, which are applied per sample on top.
    pub values: Vec<f64>,
    /// The same as emitted f32, copied out as is when nothing is on top.
    pub wire: Vec<f32>,
    /// `wire` as little-endian bytes, as the meter sends them, repeated so
    /// that a run of up to [`REPLAY_RUN`] samples from any entry is one
    /// slice: a chunk goes out as a view of this table, never copied.
    pub wire_bytes: Bytes,
}

impl std::fmt::Debug for ReplayTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayTable")
            .field("period", &self.period)
            .field("channels", &self.key.channels)
            .finish_non_exhaustive()
    }
}

/// Tables alive in this process; an entry goes when its last generator does.
static TABLES: Mutex<Vec<Weak<ReplayTable>>> = Mutex::new(Vec::new());

/// The table for `key`: a live one if some generator holds it, else
/// `synthesize(period)` (the interleaved values of samples 0..period).
pub(super) fn shared_table(
    key: ReplayKey,
    period: usize,
    synthesize: impl FnOnce(usize) -> Vec<f64>,
) -> Arc<ReplayTable> {
    // The list holds plain data: a panic elsewhere leaves it usable.
    let mut tables = TABLES.lock().unwrap_or_else(|e| e.into_inner());
    tables.retain(|t| t.strong_count() > 0);
    if let Some(table) = tables
        .iter()
        .filter_map(Weak::upgrade)
        .find(|t| t.key == key && t.period == period)
    {
        return table;
    }
    let values = synthesize(period);
    debug_assert_eq!(values.len(), period * key.channels);
    let wire: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    let periods = (period + REPLAY_RUN - 1).div_ceil(period.max(1));
    let one_period: Vec<u8> = wire.iter().flat_map(|v| v.to_le_bytes()).collect();
    let wire_bytes = Bytes::from(one_period.repeat(periods));
    let table = Arc::new(ReplayTable {
        key,
        period,
        values,
        wire,
        wire_bytes,
    });
    tables.push(Arc::downgrade(&table));
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_exact_and_bounded() {
        // 50 Hz at 8 kHz: 160 samples (one cycle); 60 Hz at 8 kHz: 400 (three).
        assert_eq!(repeat_period(50.0, 8000), Some(160));
        assert_eq!(repeat_period(60.0, 8000), Some(400));
        assert_eq!(repeat_period(50.0, 32_000), Some(640));
        assert_eq!(repeat_period(60.0, 4000), Some(200));
        // 0.5 Hz = 1/2: two seconds.
        assert_eq!(repeat_period(0.5, 8000), Some(16_000));
        assert_eq!(repeat_period(8000.0, 8000), Some(1));
        // 50.25 = 201/4 at 8 kHz: 201·n / 32000 whole first at n = 32000.
        assert_eq!(repeat_period(50.25, 8000), Some(32_000));
        // 50.02 and 49.9 have no short binary fraction: no replay.
        assert_eq!(repeat_period(50.02, 8000), None);
        assert_eq!(repeat_period(49.9, 16_000), None);
        assert_eq!(repeat_period(0.0, 8000), None);
        assert_eq!(repeat_period(50.0, 0), None);
        assert_eq!(repeat_period(f64::INFINITY, 8000), None);
        assert_eq!(repeat_period(1e300, 8000), None);
        // Every period found is a whole number of cycles, and the least one.
        for (f, rate) in [(50.0, 8000), (60.0, 8000), (50.25, 8000), (0.5, 8000)] {
            let p = repeat_period(f, rate).unwrap();
            let cycles = |n: u64| f * n as f64 / f64::from(rate);
            assert_eq!(cycles(p).fract(), 0.0, "{f} Hz");
            assert!((1..p).all(|n| cycles(n).fract() != 0.0), "{f} Hz");
        }
    }

    #[test]
    fn equal_keys_share_one_table() {
        let key = ReplayKey {
            frequency_bits: 50f64.to_bits(),
            rate: 8000,
            channels: 1,
            orders: vec![1],
            coeff_bits: vec![1.5f64.to_bits(), 0],
        };
        let mut built = 0;
        let a = shared_table(key.clone(), 4, |p| {
            built += 1;
            (0..p).map(|i| i as f64 + 0.25).collect()
        });
        let b = shared_table(key.clone(), 4, |_| unreachable!("shared"));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(built, 1);
        assert_eq!(a.wire, vec![0.25f32, 1.25, 2.25, 3.25]);
        let other = ReplayKey {
            rate: 16_000,
            ..key.clone()
        };
        let c = shared_table(other, 4, |p| vec![0.0; p]);
        assert!(!Arc::ptr_eq(&a, &c));
        drop((a, b, c));
        // Once dropped, the next request builds anew.
        let d = shared_table(key, 4, |p| vec![1.0; p]);
        assert_eq!(d.values, vec![1.0; 4]);
    }
}
