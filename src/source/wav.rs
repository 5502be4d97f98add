//! WAV float32 headers: enough RIFF to find the format and the data chunk.

use std::io::Read;

/// Why a WAV file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("cannot read WAV header: {0}")]
    Read(#[from] std::io::Error),
    #[error("not a RIFF/WAVE file")]
    NotWav,
    #[error("WAV format tag {0:#06x} is not IEEE float (3)")]
    NotFloat(u16),
    #[error("WAV holds {0}-bit samples; only 32-bit float is supported")]
    NotFloat32(u16),
    #[error("WAV has no fmt chunk before its data chunk")]
    MissingFormat,
    #[error("WAV has no data chunk")]
    MissingData,
    #[error("WAV sample rate {0} Hz is out of range (1 ..= 1000000 Hz)")]
    BadRate(u32),
    #[error("WAV has {0} channels: no meter layout has that many (give --measures)")]
    UnknownLayout(u16),
    #[error("WAV has {channels} channels but measures {measures} has a different count")]
    ChannelMismatch {
        channels: u16,
        measures: &'static str,
    },
}

/// What the header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavHeader {
    pub channels: u16,
    pub sample_rate: u32,
    /// Bytes of sample data that follow the header.
    pub data_len: u64,
    /// Bytes of header before the data.
    pub data_offset: u64,
}

const WAVE_FORMAT_IEEE_FLOAT: u16 = 3;
const WAVE_FORMAT_EXTENSIBLE: u16 = 0xfffe;
/// A data chunk whose size field says 0 or all ones was written by a
/// streaming recorder that never went back to fix it: read to the end.
const STREAMED_SIZES: [u32; 2] = [0, u32::MAX];

/// Reads up to the start of the sample data, leaving `reader` there.
pub fn parse_wav_header(reader: &mut impl Read) -> Result<WavHeader, WavError> {
    let mut riff = [0u8; 12];
    reader.read_exact(&mut riff)?;
    if &riff[..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
        return Err(WavError::NotWav);
    }
    let mut offset = 12u64;
    let mut format: Option<(u16, u32)> = None;
    loop {
        let mut chunk = [0u8; 8];
        if let Err(error) = reader.read_exact(&mut chunk) {
            return Err(if error.kind() == std::io::ErrorKind::UnexpectedEof {
                WavError::MissingData
            } else {
                error.into()
            });
        }
        offset += 8;
        let size = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        match &chunk[..4] {
            b"fmt " => {
                let mut body = vec![0u8; size as usize];
                reader.read_exact(&mut body)?;
                offset += u64::from(size);
                if size % 2 == 1 {
                    skip(reader, 1)?;
                    offset += 1;
                }
                if body.len() < 16 {
                    return Err(WavError::MissingFormat);
                }
                let tag = u16::from_le_bytes([body[0], body[1]]);
                let channels = u16::from_le_bytes([body[2], body[3]]);
                let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                let bits = u16::from_le_bytes([body[14], body[15]]);
                let float = match tag {
                    WAVE_FORMAT_IEEE_FLOAT => true,
                    // The sub-format GUID starts with the format tag.
                    WAVE_FORMAT_EXTENSIBLE if body.len() >= 26 => {
                        u16::from_le_bytes([body[24], body[25]]) == WAVE_FORMAT_IEEE_FLOAT
                    }
                    _ => false,
                };
                if !float {
                    return Err(WavError::NotFloat(tag));
                }
                if bits != 32 {
                    return Err(WavError::NotFloat32(bits));
                }
                if !crate::wire::samples::rate_in_range(rate) {
                    return Err(WavError::BadRate(rate));
                }
                format = Some((channels, rate));
            }
            b"data" => {
                let (channels, sample_rate) = format.ok_or(WavError::MissingFormat)?;
                let data_len = if STREAMED_SIZES.contains(&size) {
                    u64::MAX
                } else {
                    u64::from(size)
                };
                return Ok(WavHeader {
                    channels,
                    sample_rate,
                    data_len,
                    data_offset: offset,
                });
            }
            _ => {
                let padded = u64::from(size) + u64::from(size % 2);
                skip(reader, padded)?;
                offset += padded;
            }
        }
    }
}

fn skip(reader: &mut impl Read, bytes: u64) -> Result<(), WavError> {
    let copied = std::io::copy(&mut reader.take(bytes), &mut std::io::sink())?;
    if copied < bytes {
        return Err(WavError::MissingData);
    }
    Ok(())
}

/// Writes a float32 WAV header for `samples` samples of `channels` channels
/// (used by tests and tools that export waveforms).
pub fn wav_header(channels: u16, sample_rate: u32, samples: u64) -> Vec<u8> {
    let data_len = samples * u64::from(channels) * 4;
    let data_len32 = u32::try_from(data_len).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(44);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&data_len32.saturating_add(36).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&WAVE_FORMAT_IEEE_FLOAT.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * u32::from(channels) * 4).to_le_bytes());
    out.extend_from_slice(&(channels * 4).to_le_bytes());
    out.extend_from_slice(&32u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len32.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_writes() {
        let mut bytes = wav_header(6, 8000, 10);
        bytes.extend(std::iter::repeat_n(0u8, 240));
        let header = parse_wav_header(&mut bytes.as_slice()).unwrap();
        assert_eq!(
            header,
            WavHeader {
                channels: 6,
                sample_rate: 8000,
                data_len: 240,
                data_offset: 44
            }
        );
    }

    #[test]
    fn skips_other_chunks_and_rejects_pcm() {
        let mut bytes = b"RIFF\0\0\0\0WAVELIST\x03\0\0\0abc\0".to_vec();
        bytes.extend_from_slice(&wav_header(2, 4000, 0)[12..]);
        assert_eq!(
            parse_wav_header(&mut bytes.as_slice()).unwrap().data_offset,
            56
        );
        let mut pcm = wav_header(2, 4000, 0);
        pcm[20] = 1;
        assert!(matches!(
            parse_wav_header(&mut pcm.as_slice()),
            Err(WavError::NotFloat(1))
        ));
        assert!(matches!(
            parse_wav_header(&mut &b"RIFF\0\0\0\0WAVE"[..]),
            Err(WavError::MissingData)
        ));
    }
}
