//! Which rows the charts draw apart: windows whose values say little about
//! the meter (a partial first or last window, samples lost, no zero
//! crossing, invalid samples). They would set the axes (a partial window's
//! THD of 100 % squashes the real 2–5 % to a flat line), so they stay out of
//! the lines and the axis range and are marked instead. A window flagged
//! only for overlapping a dip or swell is a true measurement and stays in.

use super::device::{DeviceData, Source};
use crate::model::WindowFlags;

/// Flags that set a window apart: every flag but `PQ_EVENT`.
fn apart_mask() -> u8 {
    !WindowFlags::PQ_EVENT.bits()
}

/// Per row of `data.frame`, whether its values are drawn apart. Aggregates
/// are never set apart (their rows say how many windows were flagged); rows
/// of files without `flags` fall back to the `flagged` column.
pub fn rows_apart(data: &DeviceData) -> Vec<bool> {
    let frame = &data.frame;
    if matches!(data.source, Source::Aggregates(_)) {
        return vec![false; frame.len()];
    }
    let flags = frame.number("flags");
    let flagged = frame.number("flagged");
    (0..frame.len())
        .map(|i| match flags.get(i).copied().filter(|f| f.is_finite()) {
            // The column is a small non-negative integer (u8 bits).
            Some(bits) => (bits.clamp(0.0, 255.0) as u8) & apart_mask() != 0,
            None => flagged.get(i).is_some_and(|&f| f > 0.0),
        })
        .collect()
}

/// `values` split into those drawn on the line (NaN where the row is
/// apart) and those drawn apart (NaN elsewhere).
pub fn split(values: &[f64], apart: &[bool]) -> (Vec<f64>, Vec<f64>) {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if apart.get(i).copied().unwrap_or(false) {
                (f64::NAN, v)
            } else {
                (v, f64::NAN)
            }
        })
        .unzip()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::read::Frame;

    fn data(flags: Vec<f64>, flagged: Vec<f64>) -> DeviceData {
        let mut frame = Frame {
            time: (0..flags.len() as i64).collect(),
            ..Frame::default()
        };
        frame.numbers.insert("flags".into(), flags);
        frame.numbers.insert("flagged".into(), flagged);
        DeviceData {
            name: "m".into(),
            source: Source::Windows,
            frame,
            events: Frame::default(),
            harmonics: Frame::default(),
            pq_events: None,
        }
    }

    #[test]
    fn only_flags_other_than_a_pq_event_set_a_row_apart() {
        let truncated = f64::from(WindowFlags::TRUNCATED.bits());
        let pq = f64::from(WindowFlags::PQ_EVENT.bits());
        let gap_in_dip = f64::from(WindowFlags::GAP.bits() | WindowFlags::PQ_EVENT.bits());
        // Row 4 has no `flags` (an older file): its `flagged` decides.
        let rows = data(
            vec![0.0, truncated, pq, gap_in_dip, f64::NAN],
            vec![0.0, 1.0, 1.0, 1.0, 1.0],
        );
        assert_eq!(rows_apart(&rows), vec![false, true, false, true, true]);
        let (line, apart) = split(&[1.0, 2.0, 3.0], &[false, true, false]);
        assert_eq!(line[0], 1.0);
        assert!(line[1].is_nan() && apart[0].is_nan() && apart[2].is_nan());
        assert_eq!(apart[1], 2.0);
    }
}
