//! A stream starting exactly at midnight: no window, aggregate or Parquet
//! partition lands before its first sample (the previous day). Ground truth
//! is the first sample's time stamp, `startTs`, which is the midnight tick
//! itself; every check is exact (integer ns).

use crate::common;

use std::path::Path;

use common::parquet_read::{read_rows, Cell};
use meterflow::dsp::aggregate::{ClockAggregator, CycleAggregator};
use meterflow::dsp::{DeviceEngine, EngineConfig, EngineOutput};
use meterflow::meter::signal::{SignalConfig, SignalGenerator};
use meterflow::meter::synthetic::{generate_block, split_block};
use meterflow::model::WindowMetrics;
use meterflow::pipeline::batch::run_batch;
use meterflow::pipeline::batch_request::BatchRequest;
use meterflow::source::capture::RawParams;
use meterflow::wire::{Measures, SampleBlock};

/// 2025-12-02T00:00:00Z.
const MIDNIGHT_NS: i64 = 20_424 * 86_400 * 1_000_000_000;

fn run(blocks: &[SampleBlock]) -> Vec<WindowMetrics> {
    let mut engine = DeviceEngine::for_block(&EngineConfig::default(), &blocks[0])
        .unwrap_or_else(|e| panic!("{e}"));
    let mut windows = Vec::new();
    let mut sink = |o: EngineOutput<'_>| {
        if let EngineOutput::Window(w) = o {
            windows.push(w.clone());
        }
    };
    for block in blocks {
        engine
            .push_block(block, &mut sink)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    engine.finish(&mut sink);
    windows
}

#[test]
fn no_window_or_aggregate_starts_before_a_midnight_stream() {
    for rate in [4000u32, 8000, 32_000] {
        let samples = 2 * rate as usize;
        let whole = generate_block(
            &SignalConfig::default(),
            Measures::ThreePhase,
            rate,
            MIDNIGHT_NS,
            samples,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let windows = run(&split_block(&whole, &mut std::iter::repeat(977)));
        assert!(windows.len() >= 9, "{rate} Hz: {} windows", windows.len());
        assert_eq!(windows[0].start_unix_ns, MIDNIGHT_NS, "{rate} Hz");
        assert!(windows.iter().all(|w| w.start_unix_ns >= MIDNIGHT_NS));
        // Windows still tile the data: from the first sample's instant to the
        // end of the last sample's cell, (N - 0.5) sample periods.
        let covered: f64 = windows.iter().map(|w| w.duration_s).sum();
        let expected = (samples as f64 - 0.5) / f64::from(rate);
        assert!((covered - expected).abs() < 1e-9, "{rate} Hz: {covered}");
        for pair in windows.windows(2) {
            assert_eq!(pair[0].end_unix_ns, pair[1].start_unix_ns);
        }
        let mut cycles = CycleAggregator::new();
        let mut ten = ClockAggregator::ten_minutes();
        let mut packet = ClockAggregator::new(1_000_000_000);
        let mut starts = Vec::new();
        for w in &windows {
            for done in [cycles.push(w), ten.push(w), packet.push(w)]
                .into_iter()
                .flatten()
            {
                starts.push(done.start_unix_ns);
            }
        }
        for done in [cycles.flush(), ten.flush(), packet.flush()]
            .into_iter()
            .flatten()
        {
            starts.push(done.start_unix_ns);
        }
        assert!(
            starts.iter().all(|&s| s >= MIDNIGHT_NS),
            "{rate} Hz: {starts:?}"
        );
        assert!(starts.contains(&MIDNIGHT_NS));
    }
}

#[test]
fn the_window_after_a_gap_starts_at_the_first_sample_after_it() {
    let rate = 4000u32;
    let whole = generate_block(
        &SignalConfig::default(),
        Measures::SinglePhase,
        rate,
        MIDNIGHT_NS,
        2 * rate as usize,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut blocks = split_block(&whole, &mut std::iter::repeat(1000));
    // Samples 4000..5000 are lost.
    blocks.remove(4);
    let windows = run(&blocks);
    let resume_ns = MIDNIGHT_NS + 5000 * 1_000_000_000 / i64::from(rate);
    let after: Vec<_> = windows.iter().filter(|w| w.first_sample >= 5000).collect();
    assert_eq!(after[0].start_unix_ns, resume_ns);
    assert_eq!(after[0].first_sample, 5000);
    assert!(windows.iter().all(|w| w.start_unix_ns >= MIDNIGHT_NS));
}

#[test]
fn a_restarted_process_continues_where_the_last_window_ended() {
    let rate = 4000u32;
    let whole = generate_block(
        &SignalConfig::default(),
        Measures::SinglePhase,
        rate,
        MIDNIGHT_NS,
        2 * rate as usize,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let halves = split_block(&whole, &mut [4000usize, 4000].into_iter());
    let (first, second) = (run(&halves[..1]), run(&halves[1..]));
    let (Some(last), Some(next)) = (first.last(), second.first()) else {
        panic!("no windows");
    };
    // No loss in between: the windows tile across the two engines.
    assert_eq!(last.end_unix_ns, next.start_unix_ns);
    assert_eq!(first[0].start_unix_ns, MIDNIGHT_NS);
}

#[test]
fn a_latch_stream_at_midnight_starts_its_first_window_there() {
    let rate = 50u32;
    let whole = generate_block(
        &SignalConfig::default(),
        Measures::PowerLatch,
        rate,
        MIDNIGHT_NS,
        100,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut engine =
        DeviceEngine::for_block(&EngineConfig::default(), &whole).unwrap_or_else(|e| panic!("{e}"));
    let mut spans = Vec::new();
    let mut sink = |o: EngineOutput<'_>| {
        if let EngineOutput::Latch(w) = o {
            spans.push((w.start_unix_ns, w.end_unix_ns, w.duration_s));
        }
    };
    engine
        .push_block(&whole, &mut sink)
        .unwrap_or_else(|e| panic!("{e}"));
    engine.finish(&mut sink);
    // 10 readings per 200 ms window, each window from its first reading on.
    assert_eq!(spans.len(), 10);
    for (k, &(start, end, duration)) in spans.iter().enumerate() {
        assert_eq!(start, MIDNIGHT_NS + k as i64 * 200_000_000);
        assert_eq!(end, start + 200_000_000);
        assert!((duration - 0.2).abs() < 1e-12);
    }
}

fn dates(table: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for device in std::fs::read_dir(table).unwrap_or_else(|e| panic!("{e}")) {
        let device = device.unwrap_or_else(|e| panic!("{e}")).path();
        for date in std::fs::read_dir(&device).unwrap_or_else(|e| panic!("{e}")) {
            let name = date.unwrap_or_else(|e| panic!("{e}")).file_name();
            out.push(name.to_string_lossy().into_owned());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A bare f32le capture (wire units, currents in mA) whose `--start` is midnight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_midnight_capture_has_no_partition_of_the_previous_day() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let rate = 4000u32;
    let measures = Measures::ThreePhase;
    let mut generator = SignalGenerator::new(SignalConfig::default(), measures, rate)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut interleaved = vec![0.0f32; 3 * rate as usize * measures.channel_count()];
    generator.fill(&mut interleaved);
    let capture = dir.path().join("midnight.f32");
    let bytes: Vec<u8> = interleaved.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(&capture, bytes).unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path().join("out");
    let args = BatchRequest {
        inputs: vec![capture.clone()],
        out: out.clone(),
        pipeline: None,
        ..BatchRequest::default()
    };
    let config = args.config().unwrap_or_else(|e| panic!("{e:#}"));
    let raw = RawParams {
        name: Some("midnight".into()),
        measures: Some(measures),
        rate: Some(rate),
        start_unix_ns: Some(MIDNIGHT_NS),
        ..RawParams::default()
    };
    let report = run_batch(&config, &[capture], &raw, false)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(report.failed_files(), 0, "{:?}", report.files);
    let parquet = out.join("parquet");
    for table in ["windows", "aggregates"] {
        assert_eq!(
            dates(&parquet.join(table)),
            ["date=2025-12-02"],
            "{table} partitions"
        );
    }
    let column = |table: &str, name: &str| -> Vec<i64> {
        read_rows(&parquet.join(table))
            .iter()
            .filter_map(|row| match row.get(name) {
                Some(Cell::Ts(t)) => Some(*t),
                _ => None,
            })
            .collect()
    };
    let window_starts = column("windows", "window_start");
    let interval_starts = column("aggregates", "interval_start");
    assert!(!window_starts.is_empty() && !interval_starts.is_empty());
    assert_eq!(window_starts.iter().min(), Some(&MIDNIGHT_NS));
    assert_eq!(interval_starts.iter().min(), Some(&MIDNIGHT_NS));
}
