//! Decode throughput of the vendor's Matroska/WavPack recordings, samples/s
//! (one sample = all 6 channels at one instant): 60 s of a three-phase
//! 8 kHz signal written with `recordingServer.py`'s ffmpeg command line,
//! read by `ffmpeg` into meterflow's f32 path; one file, and four meters'
//! files in parallel as `meterflow batch` reads them. Needs ffmpeg.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meterflow::source::capture::{CaptureVisitor, RawParams, SessionDescription};
use meterflow::source::event::SourceEvent;
use meterflow::source::recording::read_recording;
use meterflow::wire::samples::SampleBlock;
use rayon::prelude::*;

const RATE: u32 = 8000;
const SECONDS: u64 = 60;
const TAGS: &str = "v_l1,i_l1,v_l2,i_l2,v_l3,i_l3";

/// Counts samples and keeps a checksum so nothing is optimised away.
#[derive(Default)]
struct Count {
    samples: u64,
    sum: f64,
}

impl CaptureVisitor for Count {
    fn session_start(&mut self, _: &SessionDescription) {}

    fn block(&mut self, block: &SampleBlock) {
        self.samples += block.len() as u64;
        self.sum += block
            .channels
            .iter()
            .filter_map(|c| c.first())
            .map(|&v| f64::from(v))
            .sum::<f64>();
    }

    fn event(&mut self, _: SourceEvent) {}
}

/// A recording of `SECONDS` of 230 V / 5 A per phase with a little noise
/// (so WavPack has real work), made as the vendor's server makes it.
fn record(path: &Path, name: &str) {
    let mut values = Vec::with_capacity((SECONDS * u64::from(RATE)) as usize * 6);
    let mut noise = 0x2545_f491_4f6c_dd1du64;
    for n in 0..SECONDS * u64::from(RATE) {
        let x = std::f64::consts::TAU * 50.0 * n as f64 / f64::from(RATE);
        for k in 0..3 {
            noise ^= noise << 13;
            noise ^= noise >> 7;
            noise ^= noise << 17;
            let jitter = (noise >> 40) as f64 / (1u64 << 24) as f64 - 0.5;
            let alpha = -(k as f64) * std::f64::consts::TAU / 3.0;
            values.push((325.3 * (x + alpha).sin() + 0.2 * jitter) as f32);
            values.push((7071.0 * (x + alpha - 0.5).sin() + 5.0 * jitter) as f32);
        }
    }
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "f32le", "-ar"])
        .arg(RATE.to_string())
        .args(["-guess_layout_max", "0", "-ac", "6", "-i", "pipe:0"])
        .args(["-c:a", "wavpack", "-metadata:s:a:0", "CHANNELS=6"])
        .args(["-metadata:s:a:0", &format!("CHANNEL_TAGS={TAGS}")])
        .args(["-metadata:s:a:0", &format!("title={name}")])
        .args(["-metadata:s:a:0", "timestamp=1614697441.119", "-y"])
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .expect("the recording bench needs ffmpeg");
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    child
        .stdin
        .take()
        .expect("ffmpeg's stdin")
        .write_all(&bytes)
        .expect("piping samples to ffmpeg");
    assert!(child.wait().expect("ffmpeg runs").success());
}

fn decode(path: &Path) -> u64 {
    let mut count = Count::default();
    read_recording(path, &RawParams::default(), &mut count).expect("the recording decodes");
    std::hint::black_box(count.sum);
    count.samples
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let files: Vec<PathBuf> = (0..4)
        .map(|m| {
            let path = dir.path().join(format!("meter{m}_1614697441.mkv"));
            record(&path, &format!("meter{m}"));
            path
        })
        .collect();
    let samples = SECONDS * u64::from(RATE);
    assert_eq!(decode(&files[0]), samples);
    let mut group = c.benchmark_group("recording_decode_6ch_8khz");
    group.sample_size(10);
    group.throughput(Throughput::Elements(samples));
    group.bench_function("one_file", |b| b.iter(|| decode(&files[0])));
    group.throughput(Throughput::Elements(samples * files.len() as u64));
    group.bench_function("four_files_parallel", |b| {
        b.iter(|| files.par_iter().map(|f| decode(f)).sum::<u64>())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
