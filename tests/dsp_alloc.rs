//! The per-device engine allocates nothing in steady state: after a warm-up
//! (buffers grown, FFT plans cached) further blocks cause no allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use meterflow::dsp::synthetic::{generate_block, split_block};
use meterflow::dsp::{DeviceEngine, EngineConfig, EngineOutput};
use meterflow::meter::signal::{Harmonic, SignalConfig};
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

#[test]
fn steady_state_is_allocation_free() {
    let config = SignalConfig {
        frequency_hz: 50.2,
        current_angle_deg: 30.0,
        voltage_harmonics: vec![Harmonic {
            order: 5,
            magnitude: 0.03,
            phase_deg: 0.0,
        }],
        voltage_noise_rms_v: 0.3,
        seed: 3,
        ..SignalConfig::default()
    };
    let block = generate_block(&config, Measures::ThreePhase, 8000, 0, 6 * 8000)
        .unwrap_or_else(|e| panic!("{e}"));
    let chunks = split_block(&block, &mut std::iter::repeat(42));
    let engine_config = EngineConfig {
        keep_harmonic_subgroups: true,
        ..EngineConfig::default()
    };
    let mut engine =
        DeviceEngine::for_block(&engine_config, &block).unwrap_or_else(|e| panic!("{e}"));
    let (warm, steady) = chunks.split_at(chunks.len() / 2);
    let mut windows = 0usize;
    let mut sink = |o: EngineOutput<'_>| {
        if let EngineOutput::Window(w) = o {
            windows += usize::from(w.flags.is_clean());
        }
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
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst), 0);
}
