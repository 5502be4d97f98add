//! The vendor's `CHANNEL_TAGS` (the channel names its host tools write into
//! a recording) as meterflow layouts. The vendor names channels after
//! `smartDevice.py` (`v_l1`, `i_rms_l2`, `p`, ...); a PowerMeter plug
//! writes phase-less names (`v,i`, `p,q`, `v_rms,i_rms`). Each known set
//! maps onto one of the layouts in `wire::layout`, with a channel map that
//! says where each layout channel comes from.

use std::io::Read;

use crate::wire::layout::{Measures, Phase, BYTES_PER_VALUE};

/// Why a tag set has no meterflow layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagsError {
    #[error("CHANNEL_TAGS {tags:?} name a channel twice")]
    Duplicate { tags: String },
    #[error(
        "CHANNEL_TAGS {tags:?} match no meterflow layout (known: v_l1,i_l1,v_l2,i_l2,v_l3,i_l3 | \
         v,i | v_lN,i_lN | v,i,p,q | p_l1,p_l2,p_l3,q_l1,q_l2,q_l3 | p,q | \
         v_rms_l1,v_rms_l2,v_rms_l3,i_rms_l1,i_rms_l2,i_rms_l3 | v_rms,i_rms); give --measures"
    )]
    Unknown { tags: String },
}

/// Where one channel of the layout comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ChannelSource {
    /// That channel of the recording.
    Channel(usize),
    /// Not recorded: a constant in wire units.
    Fill(f32),
}

/// A recording's channels as one of meterflow's layouts.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelMap {
    pub measures: Measures,
    /// Channels per sample in the recording.
    pub recorded: usize,
    /// One entry per channel of `measures`, in wire order.
    pub sources: Vec<ChannelSource>,
}

impl ChannelMap {
    /// The recording already is the layout, channel for channel.
    pub fn identity(measures: Measures) -> Self {
        let count = measures.channel_count();
        ChannelMap {
            measures,
            recorded: count,
            sources: (0..count).map(ChannelSource::Channel).collect(),
        }
    }

    pub fn is_identity(&self) -> bool {
        self.recorded == self.sources.len()
            && self
                .sources
                .iter()
                .enumerate()
                .all(|(k, source)| *source == ChannelSource::Channel(k))
    }

    /// A reader that yields the layout's interleaved f32le samples from the
    /// recording's.
    pub fn reader<'r, R: Read + 'r>(&self, inner: R) -> Box<dyn Read + 'r> {
        if self.is_identity() {
            Box::new(inner)
        } else {
            Box::new(RemapReader::new(inner, self.clone()))
        }
    }
}

/// A phase-less vendor name (what a one-phase plug writes) as the L1 name.
fn canonical(tag: &str) -> String {
    let tag = tag.trim().trim_matches('"').to_ascii_lowercase();
    match tag.as_str() {
        "v" | "i" | "p" | "q" | "v_rms" | "i_rms" => format!("{tag}_l1"),
        _ => tag,
    }
}

/// Powers a waveform recording may carry beside v and i; meterflow computes
/// them itself, so they are left out.
fn is_derived_power(tag: &str) -> bool {
    ["p_", "q_", "s_"]
        .iter()
        .any(|prefix| tag.starts_with(prefix))
}

/// The layout and channel map for a `CHANNEL_TAGS` value.
pub fn layout_for_tags(tags: &str) -> Result<ChannelMap, TagsError> {
    let names: Vec<String> = tags.split(',').map(canonical).collect();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != names.len() {
        return Err(TagsError::Duplicate {
            tags: tags.to_string(),
        });
    }
    let position = |name: &str| names.iter().position(|n| n == name);
    // `v,i` carries no phase (the meter's v,i_L2 writes it too): the
    // firmware's `v,i`, which means L1.
    let bare: Vec<String> = tags
        .split(',')
        .map(|t| t.trim().trim_matches('"').to_ascii_lowercase())
        .collect();
    let waveform = [
        Measures::ThreePhase,
        Measures::Phase(Phase::L1),
        Measures::Phase(Phase::L2),
        Measures::Phase(Phase::L3),
    ];
    for measures in waveform {
        let sources: Option<Vec<ChannelSource>> = measures
            .channels()
            .iter()
            .map(|c| position(c.name).map(ChannelSource::Channel))
            .collect();
        let Some(sources) = sources else { continue };
        let extra_ok = names
            .iter()
            .all(|n| measures.channels().iter().any(|c| c.name == n) || is_derived_power(n));
        if extra_ok {
            let measures = if bare.starts_with(&["v".to_string(), "i".to_string()]) {
                Measures::SinglePhase
            } else {
                measures
            };
            return Ok(ChannelMap {
                measures,
                recorded: names.len(),
                sources,
            });
        }
    }
    // Latch layouts: every recorded channel must be one of the layout's;
    // phases a plug does not have are filled (no power flows there; an RMS
    // value that was not measured is NaN, so it is left out of means).
    for (measures, fill) in [
        (Measures::PowerLatch, 0.0f32),
        (Measures::RmsLatch, f32::NAN),
    ] {
        let channels = measures.channels();
        if !names.iter().all(|n| channels.iter().any(|c| c.name == n)) {
            continue;
        }
        let sources = channels
            .iter()
            .map(|c| position(c.name).map_or(ChannelSource::Fill(fill), ChannelSource::Channel))
            .collect();
        return Ok(ChannelMap {
            measures,
            recorded: names.len(),
            sources,
        });
    }
    Err(TagsError::Unknown {
        tags: tags.to_string(),
    })
}

/// Rewrites whole interleaved samples from the recording's channel order to
/// the layout's, streaming.
struct RemapReader<R> {
    inner: R,
    map: ChannelMap,
    /// Recorded bytes read but not yet converted (a partial sample at most
    /// after conversion).
    input: Vec<u8>,
    output: Vec<u8>,
    output_pos: usize,
}

/// Recorded samples converted per refill.
const REMAP_SAMPLES: usize = 4096;

impl<R: Read> RemapReader<R> {
    fn new(inner: R, map: ChannelMap) -> Self {
        RemapReader {
            inner,
            input: Vec::with_capacity(map.recorded * BYTES_PER_VALUE * REMAP_SAMPLES),
            output: Vec::with_capacity(map.sources.len() * BYTES_PER_VALUE * REMAP_SAMPLES),
            output_pos: 0,
            map,
        }
    }

    /// Converts the next run of samples; false at end of input.
    fn refill(&mut self) -> std::io::Result<bool> {
        let in_sample = self.map.recorded * BYTES_PER_VALUE;
        let want = in_sample * REMAP_SAMPLES;
        let mut at_eof = false;
        while self.input.len() < in_sample {
            let start = self.input.len();
            self.input.resize(want, 0);
            match self.inner.read(&mut self.input[start..]) {
                Ok(0) => {
                    self.input.truncate(start);
                    at_eof = true;
                    break;
                }
                Ok(n) => self.input.truncate(start + n),
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {
                    self.input.truncate(start);
                }
                Err(error) => {
                    self.input.truncate(start);
                    return Err(error);
                }
            }
        }
        let whole = self.input.len() / in_sample;
        if whole == 0 {
            // Only at the end: a partial sample there cannot be mapped and
            // is dropped, as the decoder would drop it.
            debug_assert!(at_eof);
            return Ok(false);
        }
        self.output.clear();
        self.output_pos = 0;
        for sample in self.input[..whole * in_sample].chunks_exact(in_sample) {
            for source in &self.map.sources {
                match *source {
                    ChannelSource::Channel(c) => self
                        .output
                        .extend_from_slice(&sample[c * BYTES_PER_VALUE..(c + 1) * BYTES_PER_VALUE]),
                    ChannelSource::Fill(value) => {
                        self.output.extend_from_slice(&value.to_le_bytes())
                    }
                }
            }
        }
        self.input.drain(..whole * in_sample);
        Ok(true)
    }
}

impl<R: Read> Read for RemapReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.output_pos >= self.output.len() {
            self.output.clear();
            self.output_pos = 0;
            if !self.refill()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.output.len() - self.output_pos);
        buf[..n].copy_from_slice(&self.output[self.output_pos..self.output_pos + n]);
        self.output_pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_tag_sets_map_to_known_layouts() {
        let three = layout_for_tags("v_l1,i_l1,v_l2,i_l2,v_l3,i_l3").unwrap();
        assert_eq!(three, ChannelMap::identity(Measures::ThreePhase));
        assert!(three.is_identity());
        assert_eq!(
            layout_for_tags("v,i").unwrap(),
            ChannelMap::identity(Measures::SinglePhase)
        );
        assert_eq!(
            layout_for_tags("v_l2,i_l2").unwrap().measures,
            Measures::Phase(Phase::L2)
        );
        assert_eq!(
            layout_for_tags("v_rms_l1,v_rms_l2,v_rms_l3,i_rms_l1,i_rms_l2,i_rms_l3").unwrap(),
            ChannelMap::identity(Measures::RmsLatch)
        );
        assert_eq!(
            layout_for_tags("p_l1,p_l2,p_l3,q_l1,q_l2,q_l3").unwrap(),
            ChannelMap::identity(Measures::PowerLatch)
        );
        // The PowerMeter plug: v,i with its own p,q beside them.
        let plug = layout_for_tags("v,i,p,q").unwrap();
        assert_eq!(plug.measures, Measures::SinglePhase);
        assert_eq!(plug.recorded, 4);
        assert_eq!(
            plug.sources,
            [ChannelSource::Channel(0), ChannelSource::Channel(1)]
        );
        let pq = layout_for_tags("p,q").unwrap();
        assert_eq!(pq.measures, Measures::PowerLatch);
        use ChannelSource::{Channel, Fill};
        assert_eq!(
            pq.sources,
            [
                Channel(0),
                Fill(0.0),
                Fill(0.0),
                Channel(1),
                Fill(0.0),
                Fill(0.0)
            ]
        );
        let rms = layout_for_tags("v_RMS,i_RMS").unwrap();
        assert_eq!(rms.measures, Measures::RmsLatch);
        assert_eq!(rms.sources[0], Channel(0));
        assert_eq!(rms.sources[3], Channel(1));
        assert!(matches!(rms.sources[1], Fill(x) if x.is_nan()));
    }

    #[test]
    fn unknown_and_duplicate_tags_are_refused_by_name() {
        let error = layout_for_tags("v_l1,i_l1,v_l2,i_l2").unwrap_err();
        assert!(
            error.to_string().contains("\"v_l1,i_l1,v_l2,i_l2\""),
            "{error}"
        );
        assert!(matches!(
            layout_for_tags("temperature,humidity"),
            Err(TagsError::Unknown { .. })
        ));
        assert!(matches!(
            layout_for_tags("v,v_l1"),
            Err(TagsError::Duplicate { .. })
        ));
    }

    #[test]
    fn the_reader_reorders_drops_and_fills() {
        let map = layout_for_tags("p,q").unwrap();
        let recorded: Vec<u8> = (0..3 * 2)
            .flat_map(|k| (k as f32).to_le_bytes())
            .chain([1u8, 2]) // a partial sample at the end
            .collect();
        let mut out = Vec::new();
        map.reader(recorded.as_slice())
            .read_to_end(&mut out)
            .unwrap();
        let values: Vec<f32> = out
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(
            values,
            [
                0.0, 0.0, 0.0, 1.0, 0.0, 0.0, //
                2.0, 0.0, 0.0, 3.0, 0.0, 0.0, //
                4.0, 0.0, 0.0, 5.0, 0.0, 0.0
            ]
        );
        let plug = layout_for_tags("v,i,p,q").unwrap();
        let recorded: Vec<u8> = (0..4 * 5000)
            .flat_map(|k| (k as f32).to_le_bytes())
            .collect();
        let mut out = Vec::new();
        plug.reader(recorded.as_slice())
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out.len(), 5000 * 8);
        let last = &out[out.len() - 8..];
        assert_eq!(
            f32::from_le_bytes([last[0], last[1], last[2], last[3]]),
            19996.0
        );
        assert_eq!(
            f32::from_le_bytes([last[4], last[5], last[6], last[7]]),
            19997.0
        );
    }
}
