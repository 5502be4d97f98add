//! The per-device engine allocates nothing in steady state: after a warm-up
//! (buffers grown, FFT plans cached) further blocks cause no allocation,
//! also with power-quality detection on and events happening. (An
//! interruption makes the engine cut unsynchronised windows of new lengths,
//! whose FFT plans are made then; the PQ detector alone stays allocation-free
//! through one.) The live view's sample tap, on every block, allocates
//! nothing either.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use meterflow::dsp::pq::{PqConfig, PqOutput, PqStream};
use meterflow::dsp::{DeviceEngine, EngineConfig, EngineOutput};
use meterflow::meter::disturbance::Disturbance;
use meterflow::meter::signal::{Harmonic, SignalConfig};
use meterflow::meter::synthetic::{generate_block, split_block};
use meterflow::model::DeviceInfo;
use meterflow::sink::live::{LiveBoard, FORGET_AFTER};
use meterflow::wire::Measures;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the pointer came from `alloc` above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Counting is global: one test runs every case, one after the other.
#[test]
fn steady_state_is_allocation_free() {
    let engine_config = EngineConfig {
        keep_harmonic_subgroups: true,
        ..EngineConfig::default()
    };
    assert_allocation_free(&engine_config, Vec::new(), 0);
    let pq = PqConfig {
        keep_half_cycle: true,
        ..PqConfig::default()
    };
    let with_pq = EngineConfig {
        pq: Some(pq.clone()),
        ..engine_config
    };
    // A dip, then an RVC step once the voltage is steady again.
    assert_allocation_free(
        &with_pq,
        disturbances(&[(3.1, Some(0.05), 40.0), (4.3, None, 96.0)]),
        2,
    );
    // The detector alone, through an interruption too (and its dip).
    let all = disturbances(&[
        (3.1, Some(0.05), 40.0),
        (4.3, None, 96.0),
        (5.5, Some(0.2), 0.0),
    ]);
    let block = generate_block(&signal(all), Measures::ThreePhase, 8000, 0, 6 * 8000)
        .unwrap_or_else(|e| panic!("{e}"));
    let chunks = split_block(&block, &mut std::iter::repeat(42));
    let mut stream = PqStream::new(&pq, &EngineConfig::default(), block.measures, 8000, 0)
        .unwrap_or_else(|e| panic!("{e}"));
    let (warm, steady) = chunks.split_at(chunks.len() / 2);
    let mut events = 0usize;
    let mut sink = |o: PqOutput<'_>| events += usize::from(matches!(o, PqOutput::Event(_)));
    for chunk in warm {
        stream
            .push_block(chunk, &mut sink)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    COUNTING.store(true, Ordering::SeqCst);
    let mut failed = false;
    for chunk in steady {
        failed |= stream.push_block(chunk, &mut sink).is_err();
    }
    COUNTING.store(false, Ordering::SeqCst);
    assert!(!failed);
    assert_eq!(events, 4);
    assert_eq!(ALLOCATIONS.swap(0, Ordering::SeqCst), 0);

    // The live view's tap (every block of every meter) once its meter is
    // on the board and its waveform buffers are full.
    let board = LiveBoard::new(None, FORGET_AFTER);
    let device = DeviceInfo::new("tapped", 1, block.measures);
    for chunk in warm {
        board.samples(&device, chunk);
    }
    COUNTING.store(true, Ordering::SeqCst);
    for chunk in steady {
        board.samples(&device, chunk);
    }
    COUNTING.store(false, Ordering::SeqCst);
    assert_eq!(ALLOCATIONS.swap(0, Ordering::SeqCst), 0, "live tap");
}

/// Dips, swells, steps on all phases: (at_s, duration_s, level_pct).
fn disturbances(list: &[(f64, Option<f64>, f64)]) -> Vec<Disturbance> {
    list.iter()
        .map(|&(at_s, duration_s, level)| Disturbance {
            at_s,
            duration_s,
            phases: Vec::new(),
            level_pct: Some(level),
            level_v: None,
        })
        .collect()
}

fn signal(disturbances: Vec<Disturbance>) -> SignalConfig {
    SignalConfig {
        frequency_hz: 50.2,
        current_angle_deg: 30.0,
        voltage_harmonics: vec![Harmonic {
            order: 5,
            magnitude: 0.03,
            phase_deg: 0.0,
        }],
        voltage_noise_rms_v: 0.3,
        seed: 3,
        disturbances,
        ..SignalConfig::default()
    }
}

fn assert_allocation_free(
    engine_config: &EngineConfig,
    disturbances: Vec<Disturbance>,
    expected_events: usize,
) {
    let block = generate_block(
        &signal(disturbances),
        Measures::ThreePhase,
        8000,
        0,
        6 * 8000,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let chunks = split_block(&block, &mut std::iter::repeat(42));
    let mut engine =
        DeviceEngine::for_block(engine_config, &block).unwrap_or_else(|e| panic!("{e}"));
    let (warm, steady) = chunks.split_at(chunks.len() / 2);
    let (mut windows, mut events) = (0usize, 0usize);
    let mut sink = |o: EngineOutput<'_>| match o {
        EngineOutput::Window(w) => windows += usize::from(w.flags.is_clean()),
        EngineOutput::PqEvent(_) => events += 1,
        _ => {}
    };
    for chunk in warm {
        engine
            .push_block(chunk, &mut sink)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    COUNTING.store(true, Ordering::SeqCst);
    let mut failed = false;
    for chunk in steady {
        failed |= engine.push_block(chunk, &mut sink).is_err();
    }
    COUNTING.store(false, Ordering::SeqCst);
    assert!(!failed);
    assert!(windows > 20, "{windows}");
    assert_eq!(events, expected_events);
    assert_eq!(ALLOCATIONS.swap(0, Ordering::SeqCst), 0);
}
