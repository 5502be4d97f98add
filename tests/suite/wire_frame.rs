//! The meter stream decoder against hand-built byte streams: any split of the
//! input gives the same items, round trips hold, and bad input is counted, not fatal.

use bytes::{Bytes, BytesMut};
use meterflow::wire::frame::{put_data_frame, put_info_line, MAX_INFO_LINE};
use meterflow::wire::{Anomaly, Frame, MeterCodec, RawCodec};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

/// Decodes `input` fed in pieces cut at `cuts`, then ends the stream.
fn decode_split<D: Decoder<Item = Frame, Error = std::io::Error>>(
    decoder: &mut D,
    input: &[u8],
    cuts: &[usize],
) -> Vec<Frame> {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut last = 0;
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|c| c.min(&input.len()).to_owned())
        .collect();
    points.sort_unstable();
    points.push(input.len());
    for point in points {
        buf.extend_from_slice(&input[last..point]);
        last = point;
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            frames.push(frame);
        }
    }
    while let Some(frame) = decoder.decode_eof(&mut buf).unwrap() {
        frames.push(frame);
    }
    frames
}

fn decode_all(input: &[u8]) -> Vec<Frame> {
    decode_split(&mut MeterCodec::new(), input, &[])
}

fn values(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|k| seed + k as f32 * 0.25 - 100.0).collect()
}

/// A recorded-like stream: info line, lifeness lines, sample answer, chunks
/// interleaved with rate logs, a tail chunk and the stop answer.
fn recorded_stream() -> (Vec<u8>, Vec<Frame>) {
    let mut buf = BytesMut::new();
    let mut expected = Vec::new();
    let line = |buf: &mut BytesMut, text: &str, expected: &mut Vec<Frame>| {
        put_info_line(buf, text);
        expected.push(Frame::Info(text.to_string()));
    };
    line(
        &mut buf,
        r#"{"cmd":"info","type":"smartmeter","name":"smartmeter001"}"#,
        &mut expected,
    );
    line(&mut buf, "[I]03/02 10:42:24: ", &mut expected);
    line(
        &mut buf,
        r#"{"error":false,"cmd":"sample","measures":"v,i,v,i,v,i","chunksize":1008}"#,
        &mut expected,
    );
    for seq in 0..12u32 {
        let samples = if seq == 11 {
            values(6 * 5, seq as f32)
        } else {
            values(6 * 42, seq as f32)
        };
        put_data_frame(&mut buf, seq, &samples);
        let payload: Vec<u8> = samples.iter().flat_map(|v| v.to_le_bytes()).collect();
        expected.push(Frame::Data {
            seq,
            payload: Bytes::from(payload),
        });
        if seq == 5 {
            line(&mut buf, "[I]03/02 10:42:25: 7999.87Hz, 1s", &mut expected);
        }
    }
    line(
        &mut buf,
        r#"{"msg":"Received stop command","cmd":"stop","error":false}"#,
        &mut expected,
    );
    (buf.to_vec(), expected)
}

#[test]
fn decodes_a_recorded_stream_in_one_piece() {
    let (input, expected) = recorded_stream();
    let mut codec = MeterCodec::new();
    codec.set_bytes_per_sample(24);
    assert_eq!(decode_split(&mut codec, &input, &[]), expected);
    let stats = codec.stats();
    assert_eq!(stats.data_frames, 12);
    assert_eq!(stats.info_lines, 5);
    assert_eq!(stats.anomalies(), 0);
}

#[test]
fn every_single_split_point_gives_the_same_frames() {
    let (input, expected) = recorded_stream();
    for cut in 0..=input.len() {
        assert_eq!(
            decode_split(&mut MeterCodec::new(), &input, &[cut]),
            expected,
            "cut at {cut}"
        );
    }
}

#[test]
fn byte_by_byte_feeding_gives_the_same_frames() {
    let (input, expected) = recorded_stream();
    let cuts: Vec<usize> = (0..input.len()).collect();
    assert_eq!(
        decode_split(&mut MeterCodec::new(), &input, &cuts),
        expected
    );
}

proptest! {
    #[test]
    fn random_splits_give_the_same_frames(cuts in proptest::collection::vec(0usize..7000, 0..40)) {
        let (input, expected) = recorded_stream();
        prop_assert_eq!(decode_split(&mut MeterCodec::new(), &input, &cuts), expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_are_accounted(
        noise in proptest::collection::vec(any::<u8>(), 0..3000),
        cuts in proptest::collection::vec(0usize..3000, 0..10),
    ) {
        let mut codec = MeterCodec::new();
        codec.set_bytes_per_sample(24);
        let frames = decode_split(&mut codec, &noise, &cuts);
        // Every input byte ends up in exactly one item.
        let mut accounted = 0usize;
        for frame in &frames {
            accounted += match frame {
                Frame::Info(text) => text.len() + 5 + 1,
                Frame::Data { payload, .. } => payload.len() + 11,
                Frame::Anomaly(Anomaly::Resync { skipped }) => *skipped,
                Frame::Anomaly(Anomaly::Truncated { bytes }) => *bytes,
                Frame::Anomaly(Anomaly::BadDataLength { len, .. }) => len + 11,
                Frame::Anomaly(Anomaly::InvalidUtf8 { len }) => len + 5 + 1,
                Frame::Anomaly(Anomaly::InfoTooLong { len }) => len + 5 + 1,
                Frame::Anomaly(_) => 0,
            };
        }
        // `\r` before `\n` is stripped from Info text, so allow one byte per line.
        let lines = frames.iter().filter(|f| matches!(f, Frame::Info(_) | Frame::Anomaly(Anomaly::InvalidUtf8 { .. }))).count();
        prop_assert!(accounted <= noise.len() && noise.len() <= accounted + lines,
            "accounted {} of {} bytes", accounted, noise.len());
    }

    #[test]
    fn encode_decode_round_trip(
        items in proptest::collection::vec(
            prop_oneof![
                "[ -~]{0,80}".prop_map(Frame::Info),
                (any::<u32>(), proptest::collection::vec(any::<u8>(), 0..600))
                    .prop_map(|(seq, p)| Frame::Data { seq, payload: Bytes::from(p) }),
            ],
            0..20,
        )
    ) {
        // Consecutive packet numbers so no gap is reported in between.
        let mut next_seq = 0u32;
        let items: Vec<Frame> = items.into_iter().map(|f| match f {
            Frame::Data { payload, .. } => {
                next_seq += 1;
                Frame::Data { seq: next_seq - 1, payload }
            }
            other => other,
        }).collect();
        let mut codec = MeterCodec::new();
        let mut wire = BytesMut::new();
        for item in items.clone() {
            codec.encode(item, &mut wire).unwrap();
        }
        prop_assert_eq!(decode_all(&wire), items);
    }
}

#[test]
fn payload_is_a_slice_of_the_read_buffer() {
    let mut buf = BytesMut::with_capacity(4096);
    put_data_frame(&mut buf, 0, &values(252, 1.0));
    let base = buf.as_ptr() as usize;
    let mut codec = MeterCodec::new();
    match codec.decode(&mut buf).unwrap() {
        Some(Frame::Data { payload, .. }) => {
            assert_eq!(payload.as_ptr() as usize, base + 11, "payload was copied");
            assert_eq!(payload.len(), 1008);
        }
        other => panic!("expected data, got {other:?}"),
    }
}

#[test]
fn reserves_room_for_the_announced_chunk() {
    let mut full = BytesMut::new();
    put_data_frame(&mut full, 0, &values(252, 1.0));
    let mut buf = BytesMut::with_capacity(16);
    buf.extend_from_slice(&full[..20]);
    let mut codec = MeterCodec::new();
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    assert!(buf.capacity() >= full.len(), "capacity {}", buf.capacity());
}

#[test]
fn garbage_before_and_between_frames_is_skipped_and_counted() {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(b"\x00\xffnoise");
    put_info_line(&mut buf, "hello");
    buf.extend_from_slice(b"DatXInf");
    put_data_frame(&mut buf, 0, &[1.0, 2.0]);
    let mut codec = MeterCodec::new();
    let frames = decode_split(&mut codec, &buf, &[]);
    assert_eq!(
        frames,
        vec![
            Frame::Anomaly(Anomaly::Resync { skipped: 7 }),
            Frame::Info("hello".into()),
            Frame::Anomaly(Anomaly::Resync { skipped: 7 }),
            Frame::Data {
                seq: 0,
                payload: Bytes::from([1.0f32.to_le_bytes(), 2.0f32.to_le_bytes()].concat())
            },
        ]
    );
    assert_eq!(codec.stats().resyncs, 2);
    assert_eq!(codec.stats().skipped_bytes, 14);
}

#[test]
fn a_length_that_is_not_whole_samples_is_counted_and_dropped() {
    let mut buf = BytesMut::new();
    put_data_frame(&mut buf, 0, &values(6, 0.0));
    put_data_frame(&mut buf, 1, &values(5, 0.0)); // 20 bytes, not a multiple of 24
    put_data_frame(&mut buf, 2, &values(6, 0.0));
    let mut codec = MeterCodec::new();
    codec.set_bytes_per_sample(24);
    let frames = decode_split(&mut codec, &buf, &[]);
    assert_eq!(frames.len(), 3);
    assert_eq!(
        frames[1],
        Frame::Anomaly(Anomaly::BadDataLength {
            seq: 1,
            len: 20,
            bytes_per_sample: 24
        })
    );
    assert!(matches!(frames[2], Frame::Data { seq: 2, .. }));
    assert_eq!(codec.stats().bad_lengths, 1);
    assert_eq!(codec.stats().gaps, 0, "a malformed chunk is not also a gap");
}

#[test]
fn an_info_line_over_64_kib_is_discarded_without_growing_the_buffer() {
    let mut input = BytesMut::new();
    input.extend_from_slice(b"Info:");
    input.extend_from_slice(&vec![b'x'; MAX_INFO_LINE * 3]);
    input.extend_from_slice(b"\r\n");
    put_info_line(&mut input, "after");
    let mut codec = MeterCodec::new();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut peak = 0;
    for piece in input.chunks(4096) {
        buf.extend_from_slice(piece);
        peak = peak.max(buf.len());
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            frames.push(frame);
        }
    }
    assert_eq!(
        frames,
        vec![
            Frame::Anomaly(Anomaly::InfoTooLong {
                len: MAX_INFO_LINE * 3 + 1
            }),
            Frame::Info("after".into())
        ]
    );
    assert!(peak <= MAX_INFO_LINE + 4096 + 16, "buffer grew to {peak}");
    assert_eq!(codec.stats().oversize_info, 1);
}

#[test]
fn invalid_utf8_in_an_info_line_is_counted() {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(b"Info:\xff\xfe bad\r\n");
    put_info_line(&mut buf, "ok");
    let mut codec = MeterCodec::new();
    let frames = decode_split(&mut codec, &buf, &[]);
    assert_eq!(
        frames,
        vec![
            Frame::Anomaly(Anomaly::InvalidUtf8 { len: 6 }),
            Frame::Info("ok".into())
        ]
    );
    assert_eq!(codec.stats().invalid_utf8, 1);
}

#[test]
fn packet_number_jumps_are_gaps_with_the_lost_count() {
    let mut buf = BytesMut::new();
    for seq in [0u32, 1, 2, 6, 7, 0, 1] {
        put_data_frame(&mut buf, seq, &[0.0; 6]);
    }
    let mut codec = MeterCodec::new();
    let frames = decode_split(&mut codec, &buf, &[]);
    let gaps: Vec<&Frame> = frames
        .iter()
        .filter(|f| matches!(f, Frame::Anomaly(_)))
        .collect();
    assert_eq!(
        gaps,
        vec![&Frame::Anomaly(Anomaly::Gap {
            expected: 3,
            received: 6,
            lost_chunks: 3
        })]
    );
    // The gap is reported right before the chunk that revealed it.
    assert!(matches!(frames[3], Frame::Anomaly(Anomaly::Gap { .. })));
    assert!(matches!(frames[4], Frame::Data { seq: 6, .. }));
    assert_eq!(codec.stats().lost_chunks, 3);
}

#[test]
fn a_stream_cut_inside_a_frame_ends_with_truncated() {
    let mut buf = BytesMut::new();
    put_data_frame(&mut buf, 0, &[1.0; 6]);
    put_data_frame(&mut buf, 1, &[1.0; 6]);
    let cut = &buf[..buf.len() - 7];
    let frames = decode_all(cut);
    assert_eq!(frames.len(), 2);
    assert_eq!(
        frames[1],
        Frame::Anomaly(Anomaly::Truncated { bytes: 11 + 24 - 7 })
    );
}

#[test]
fn a_huge_announced_length_is_bounded_by_u16() {
    // 0xffff bytes announced but only a few sent: the decoder waits, then truncates.
    let mut buf = BytesMut::new();
    buf.extend_from_slice(b"Data:\xff\xff\x00\x00\x00\x00abc");
    let frames = decode_all(&buf);
    assert_eq!(
        frames,
        vec![Frame::Anomaly(Anomaly::Truncated { bytes: 14 })]
    );
}

#[test]
fn raw_mode_yields_whole_samples() {
    let samples = values(6 * 100 + 3, 0.0); // 100 samples and half of one more
    let bytes: Vec<u8> = samples.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut codec = RawCodec::new(24, 42);
    let frames = decode_split(&mut codec, &bytes, &[5, 1000, 1001]);
    let sizes: Vec<usize> = frames
        .iter()
        .map(|f| match f {
            Frame::Data { payload, .. } => payload.len(),
            Frame::Anomaly(Anomaly::Truncated { bytes }) => *bytes,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(sizes, vec![1008, 1008, 16 * 24, 12]);
    let seqs: Vec<u32> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Data { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, vec![0, 1, 2]);
}

/// Long runs of values (more than the encoder converts at once) append
/// exactly their little-endian bytes after what the buffer held.
#[test]
fn put_f32le_appends_every_value_in_order() {
    let values: Vec<f32> = (0..1000u32)
        .map(|i| f32::from_bits(0x3f80_0000 ^ i.wrapping_mul(2_654_435_761) >> 9))
        .collect();
    let mut buf = BytesMut::from(&b"head"[..]);
    meterflow::wire::frame::put_f32le(&mut buf, &values);
    assert_eq!(&buf[..4], b"head");
    let expected: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(&buf[4..], &expected[..]);
}
