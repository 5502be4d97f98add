//! The harmonic spectrum of a device: per channel, the mean of each
//! subgroup magnitude over the span, as % of the channel's mean fundamental.

use super::charts::Spectrum;
use super::read::Frame;

/// Highest order shown (IEC 61000-4-7's default H).
const MAX_ORDER: usize = 40;

/// One spectrum per channel of the `harmonics` rows, channels in name order.
pub fn spectra(harmonics: &Frame) -> Vec<Spectrum> {
    let channels = harmonics.text("channel");
    let Some(lists) = harmonics.lists.get("subgroups") else {
        return Vec::new();
    };
    let mut names: Vec<&String> = channels.iter().collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| {
            let mut sums = vec![0.0; MAX_ORDER];
            let mut counts = vec![0u64; MAX_ORDER];
            for (list, _) in lists.iter().zip(channels).filter(|(_, c)| *c == name) {
                for (k, &g) in list.iter().take(MAX_ORDER).enumerate() {
                    if g.is_finite() {
                        sums[k] += g;
                        counts[k] += 1;
                    }
                }
            }
            let mean: Vec<f64> = sums
                .iter()
                .zip(&counts)
                .map(|(s, &n)| if n > 0 { s / n as f64 } else { f64::NAN })
                .collect();
            let fundamental = mean.first().copied().filter(|g| *g > 0.0)?;
            let orders = counts.iter().rposition(|&n| n > 0)?;
            Some(Spectrum {
                channel: name.clone(),
                percent: mean[1..=orders]
                    .iter()
                    .map(|g| 100.0 * g / fundamental)
                    .collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spectrum_is_mean_relative_to_the_fundamental() {
        let mut frame = Frame {
            time: vec![0, 1, 2],
            ..Frame::default()
        };
        frame.texts.insert(
            "channel".into(),
            vec!["i_l1".into(), "i_l1".into(), "v_l1".into()],
        );
        frame.lists.insert(
            "subgroups".into(),
            vec![vec![10.0, 1.0, 2.0], vec![10.0, 3.0, 0.0], vec![230.0, 2.3]],
        );
        let spectra = spectra(&frame);
        assert_eq!(spectra.len(), 2);
        assert_eq!(spectra[0].channel, "i_l1");
        // Order 2: mean 2 A of 10 A = 20 %; order 3: mean 1 A = 10 %.
        assert_eq!(spectra[0].percent, vec![20.0, 10.0]);
        // 2.3 / 230 in floating point: within 1e-12 of 1 %.
        assert!((spectra[1].percent[0] - 1.0).abs() < 1e-12);
        assert_eq!(spectra[1].percent.len(), 1);
    }
}
