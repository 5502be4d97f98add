//! The streaming flickermeter of one voltage channel: samples in, cut
//! anywhere, with their time; `Pinst`, `Pst` and `Plt` out.
//!
//! Time comes from the sample count since the start of the current run of
//! contiguous samples (a segment), so the cut of the stream changes no
//! result. A gap, non-finite samples or a vanished voltage end the segment's
//! filters: they restart from steady state on the next good samples and
//! values for `settling_s` after are flagged [`FlickerFlags::SETTLING`].

use super::chain::{ChainDesign, ChainState};
use super::classifier::Classifier;
use super::decimator::SquareDecimator;
use super::output::{FlickerOutput, SeverityValue};
use super::{FlickerConfig, FlickerError, Lamp};
use crate::model::flicker::{FlickerFlags, PinstValue};

/// Decimated values handed to the chain at a time.
const BATCH: usize = 32;
/// Decimated rate aimed at, Hz.
const DECIMATED_RATE_HZ: f64 = 800.0;
/// Lowest input rate: the 120 Hz ripple must stay below Nyquist.
pub const MIN_RATE_HZ: u32 = 400;
/// `Pst` observation period, ns.
const PST_NS: i64 = 600_000_000_000;
/// `Plt` period, ns (12 `Pst`).
const PLT_NS: i64 = 12 * PST_NS;
const PST_PER_PLT: u32 = 12;
/// `Pinst` output slot, ns.
const PINST_SLOT_NS: i64 = 10_000_000;
/// Warm-up before the filters start: the mean square over this long
/// (10 cycles at 50 Hz, 12 at 60 Hz) seeds the RMS reference, s.
const WARM_UP_S: f64 = 0.2;
/// Below this share of the nominal voltage the voltage counts as absent.
const PRESENT_SHARE: f64 = 0.1;

/// One open aggregation interval.
#[derive(Debug, Clone, Copy)]
struct Interval {
    start: i64,
    end: i64,
    count: u32,
    flags: FlickerFlags,
}

/// `Pinst` being folded into one output slot.
#[derive(Debug, Clone, Copy)]
struct Slot {
    start: i64,
    sum: f64,
    max: f64,
    count: u32,
    flags: FlickerFlags,
}

/// `Plt` being accumulated.
#[derive(Debug, Clone, Copy)]
struct LongInterval {
    start: i64,
    cubes: f64,
    count: u32,
    flags: FlickerFlags,
}

/// Everything but the decimator (so its callback can borrow this mutably).
#[derive(Debug, Clone)]
struct Core {
    keep_pinst: bool,
    /// The lamp `design` weights with; each value says it.
    lamp: Lamp,
    design: ChainDesign,
    /// Input samples per decimated value.
    factor: u64,
    /// ns per input sample.
    sample_ns: f64,
    /// ns per decimated value, for the coverage check.
    decimated_ns: f64,
    settling_ns: i64,
    /// Start of the current segment, ns; `None` before the first sample and
    /// after a gap or `finish`.
    segment_start: Option<i64>,
    /// Input samples consumed in the segment.
    consumed: u64,
    /// A gap was reported: flag the interval where data resumes.
    gap_pending: bool,
    running: bool,
    chain: ChainState,
    warm_sum: f64,
    warm_count: u32,
    warm_len: u32,
    /// Mean square below which the voltage is absent, V².
    present_threshold: f64,
    settle_until: i64,
    interval: Option<Interval>,
    classifier: Classifier,
    slot: Option<Slot>,
    long: Option<LongInterval>,
}

/// Flickermeter of one voltage channel; see the module docs of
/// [`dsp::flicker`](super).
#[derive(Debug, Clone)]
pub struct FlickerMeter {
    config: FlickerConfig,
    decimator: SquareDecimator,
    core: Core,
}

impl FlickerMeter {
    pub fn new(config: FlickerConfig) -> Result<FlickerMeter, FlickerError> {
        if config.rate_hz < MIN_RATE_HZ {
            return Err(FlickerError::RateTooLow {
                min: MIN_RATE_HZ,
                got: config.rate_hz,
            });
        }
        let f = config.nominal_frequency_hz;
        if !(f.is_finite() && (40.0..=70.0).contains(&f)) {
            return Err(FlickerError::BadConfig(
                "nominal_frequency_hz must be 50 or 60",
            ));
        }
        let u = config.nominal_voltage_v;
        if !(u.is_finite() && u > 0.0) {
            return Err(FlickerError::BadConfig("nominal_voltage_v must be > 0"));
        }
        if !(config.settling_s.is_finite() && config.settling_s >= 0.0) {
            return Err(FlickerError::BadConfig("settling_s must be >= 0"));
        }
        let rate = f64::from(config.rate_hz);
        let factor = ((rate / DECIMATED_RATE_HZ).round() as usize).max(1);
        let decimator = SquareDecimator::new(factor);
        let decimated = rate / factor as f64;
        let design = ChainDesign::new(decimated, f, config.lamp, |hz| decimator.droop(hz, rate));
        let core = Core {
            keep_pinst: config.keep_pinst,
            lamp: config.lamp,
            design,
            factor: factor as u64,
            sample_ns: 1e9 / rate,
            decimated_ns: 1e9 / decimated,
            settling_ns: (config.settling_s * 1e9).round() as i64,
            segment_start: None,
            consumed: 0,
            gap_pending: false,
            running: false,
            chain: ChainState::default(),
            warm_sum: 0.0,
            warm_count: 0,
            warm_len: ((WARM_UP_S * decimated).round() as u32).max(1),
            present_threshold: (PRESENT_SHARE * u) * (PRESENT_SHARE * u),
            settle_until: i64::MIN,
            interval: None,
            classifier: Classifier::default(),
            slot: None,
            long: None,
        };
        Ok(FlickerMeter {
            config,
            decimator,
            core,
        })
    }

    pub fn config(&self) -> &FlickerConfig {
        &self.config
    }

    /// Feeds consecutive samples (V) of the channel; the first one was taken
    /// at `first_sample_unix_ns`. A time that does not continue the previous
    /// push (by more than half a sample) is treated as a gap.
    pub fn push(
        &mut self,
        samples: &[f32],
        first_sample_unix_ns: i64,
        out: &mut impl FnMut(FlickerOutput),
    ) {
        if samples.is_empty() {
            return;
        }
        let core = &mut self.core;
        if let Some(start) = core.segment_start {
            let expected = start as f64 + core.consumed as f64 * core.sample_ns;
            if (first_sample_unix_ns as f64 - expected).abs() > 0.5 * core.sample_ns {
                core.end_segment(true);
                self.decimator.reset();
            }
        }
        if core.segment_start.is_none() {
            core.begin_segment(first_sample_unix_ns, out);
        }
        let factor = core.factor;
        // Decimate a stretch first, then run the chain over its blocks back
        // to back: consecutive chain steps overlap in the CPU.
        let mut batch = [(0u64, 0.0f64); BATCH];
        // (`Pinst`, presence) after each block's chain step.
        let mut stepped = [(0.0f64, 0.0f64); BATCH];
        for piece in samples.chunks(BATCH * factor as usize) {
            let first_index = core.consumed;
            let mut filled = 0;
            self.decimator.push(piece, |last, mean_square| {
                // At most BATCH blocks end in BATCH·factor samples.
                batch[filled] = (first_index + last as u64, mean_square);
                filled += 1;
            });
            let blocks = &batch[..filled];
            // A running chain steps through the whole stretch in one tight
            // loop. Those steps are the ones `block` would take until the
            // chain restarts (no voltage, invalid samples); after a restart
            // the rest goes through `block`, and the chain state is replaced
            // when it starts again, so steps taken past it do not matter.
            let mut ahead = core.running;
            if ahead {
                for (slot, &(_, mean_square)) in stepped.iter_mut().zip(blocks) {
                    let pinst = core.chain.step(&core.design, mean_square);
                    *slot = (pinst, core.chain.presence());
                }
            }
            let segment_start = core.segment_start.unwrap_or(0);
            for (&(last, mean_square), &step) in blocks.iter().zip(&stepped) {
                // Centre of the block, in samples since the segment start.
                let block_start = last + 1 - factor;
                let centre = block_start as f64 + (factor - 1) as f64 * 0.5;
                let offset = (centre * core.sample_ns + 0.5) as i64;
                let time = segment_start + offset;
                if ahead && core.running {
                    core.stepped_block(time, mean_square, step, out);
                } else {
                    core.block(time, mean_square, out);
                }
                ahead &= core.running;
            }
            core.consumed += piece.len() as u64;
        }
    }

    /// Samples were lost before the next push: the filters restart there.
    pub fn gap(&mut self) {
        self.core.end_segment(true);
        self.decimator.reset();
    }

    /// The voltage was interrupted (e.g. an interruption event): restart the
    /// filters and settle again, like after a gap but without losing samples.
    pub fn restart(&mut self) {
        self.core.restart_chain(None);
    }

    /// End of the stream: hands out the open `Pinst` slot, `Pst` and `Plt`.
    pub fn finish(&mut self, out: &mut impl FnMut(FlickerOutput)) {
        self.core.end_segment(false);
        self.decimator.reset();
        self.core.close_slot(out);
        self.core.close_interval(out);
        self.core.close_long(out);
    }
}

impl Core {
    fn begin_segment(&mut self, start: i64, out: &mut impl FnMut(FlickerOutput)) {
        self.segment_start = Some(start);
        self.consumed = 0;
        self.restart_chain(Some(start));
        if std::mem::take(&mut self.gap_pending) {
            self.mark(start, FlickerFlags::GAP, out);
        }
    }

    fn end_segment(&mut self, gap: bool) {
        if self.segment_start.take().is_some() && gap {
            self.gap_pending = true;
            if let Some(interval) = &mut self.interval {
                interval.flags |= FlickerFlags::GAP;
            }
        }
        self.running = false;
        self.warm_sum = 0.0;
        self.warm_count = 0;
    }

    /// Back to warm-up; settling counts from `from` (or the next block).
    fn restart_chain(&mut self, from: Option<i64>) {
        self.running = false;
        self.warm_sum = 0.0;
        self.warm_count = 0;
        self.settle_until = from.map_or(i64::MIN, |t| t.saturating_add(self.settling_ns));
    }

    /// One decimated value (mean square, V²) taken at `time`.
    #[inline]
    fn block(&mut self, time: i64, mean_square: f64, out: &mut impl FnMut(FlickerOutput)) {
        if !mean_square.is_finite() {
            self.restart_chain(None);
            self.mark(time, FlickerFlags::INVALID_SAMPLES, out);
            return;
        }
        if !self.running {
            if self.warm_count == 0 && self.settle_until == i64::MIN {
                self.settle_until = time.saturating_add(self.settling_ns);
            }
            self.warm_sum += mean_square;
            self.warm_count += 1;
            if self.warm_count == self.warm_len {
                let mean = self.warm_sum / f64::from(self.warm_len);
                self.warm_sum = 0.0;
                self.warm_count = 0;
                if mean >= self.present_threshold {
                    self.chain = ChainState::start(&self.design, mean);
                    self.running = true;
                } else {
                    self.settle_until = i64::MIN;
                    self.mark(time, FlickerFlags::NO_VOLTAGE, out);
                }
            }
            return;
        }
        let pinst = self.chain.step(&self.design, mean_square);
        self.after_step(time, pinst, self.chain.presence(), out);
    }

    /// [`block`](Self::block) of a running chain whose step for this block
    /// was already taken, giving `(pinst, presence)`.
    #[inline]
    fn stepped_block(
        &mut self,
        time: i64,
        mean_square: f64,
        (pinst, presence): (f64, f64),
        out: &mut impl FnMut(FlickerOutput),
    ) {
        if !mean_square.is_finite() {
            self.restart_chain(None);
            self.mark(time, FlickerFlags::INVALID_SAMPLES, out);
            return;
        }
        self.after_step(time, pinst, presence, out);
    }

    /// The rest of a running block once the chain has stepped.
    #[inline]
    fn after_step(
        &mut self,
        time: i64,
        pinst: f64,
        presence: f64,
        out: &mut impl FnMut(FlickerOutput),
    ) {
        if presence < self.present_threshold {
            self.restart_chain(None);
            self.mark(time, FlickerFlags::NO_VOLTAGE, out);
            return;
        }
        let flags = if time < self.settle_until {
            FlickerFlags::SETTLING
        } else {
            FlickerFlags::NONE
        };
        self.classify(time, pinst, flags, out);
    }

    #[inline]
    fn classify(
        &mut self,
        time: i64,
        pinst: f64,
        flags: FlickerFlags,
        out: &mut impl FnMut(FlickerOutput),
    ) {
        let interval = self.interval_at(time, out);
        interval.count += 1;
        interval.flags |= flags;
        // The filters' start-up transient is not flicker: while settling the
        // values are flagged (and kept in the Pinst series) but not counted.
        if !flags.contains(FlickerFlags::SETTLING) {
            self.classifier.add(pinst);
        }
        if self.keep_pinst {
            let start = time - time.rem_euclid(PINST_SLOT_NS);
            if self.slot.is_some_and(|s| s.start != start) {
                self.close_slot(out);
            }
            let slot = self.slot.get_or_insert(Slot {
                start,
                sum: 0.0,
                max: f64::NEG_INFINITY,
                count: 0,
                flags: FlickerFlags::NONE,
            });
            slot.sum += pinst;
            slot.max = slot.max.max(pinst);
            slot.count += 1;
            slot.flags |= flags;
        }
    }

    /// ORs `flags` into the interval holding `time`.
    fn mark(&mut self, time: i64, flags: FlickerFlags, out: &mut impl FnMut(FlickerOutput)) {
        self.interval_at(time, out).flags |= flags;
    }

    /// The open interval, after closing it if `time` is past it.
    #[inline]
    fn interval_at(&mut self, time: i64, out: &mut impl FnMut(FlickerOutput)) -> &mut Interval {
        if self
            .interval
            .is_some_and(|i| time >= i.end || time < i.start)
        {
            self.close_slot(out);
            self.close_interval(out);
        }
        self.interval.get_or_insert_with(|| {
            let start = time - time.rem_euclid(PST_NS);
            Interval {
                start,
                end: start + PST_NS,
                count: 0,
                flags: FlickerFlags::NONE,
            }
        })
    }

    fn close_slot(&mut self, out: &mut impl FnMut(FlickerOutput)) {
        if let Some(slot) = self.slot.take() {
            out(FlickerOutput::Pinst(PinstValue {
                time_unix_ns: slot.start,
                mean: slot.sum / f64::from(slot.count.max(1)),
                max: slot.max,
                flags: slot.flags,
            }));
        }
    }

    fn close_interval(&mut self, out: &mut impl FnMut(FlickerOutput)) {
        let Some(mut interval) = self.interval.take() else {
            return;
        };
        if self.classifier.is_empty() {
            return;
        }
        let covered = f64::from(interval.count) * self.decimated_ns;
        if covered < PST_NS as f64 - 1.5 * self.decimated_ns {
            interval.flags |= FlickerFlags::INCOMPLETE;
        }
        let pst = SeverityValue {
            start_unix_ns: interval.start,
            end_unix_ns: interval.end,
            value: self.classifier.pst(),
            count: interval.count,
            flags: interval.flags,
            lamp: self.lamp,
        };
        self.classifier.clear();
        out(FlickerOutput::Pst(pst));
        self.add_to_long(&pst, out);
    }

    fn add_to_long(&mut self, pst: &SeverityValue, out: &mut impl FnMut(FlickerOutput)) {
        let start = pst.start_unix_ns - pst.start_unix_ns.rem_euclid(PLT_NS);
        if self.long.is_some_and(|l| l.start != start) {
            self.close_long(out);
        }
        let long = self.long.get_or_insert(LongInterval {
            start,
            cubes: 0.0,
            count: 0,
            flags: FlickerFlags::NONE,
        });
        long.cubes += pst.value * pst.value * pst.value;
        long.count += 1;
        long.flags |= pst.flags;
        // The last `Pst` of the 2 h closes it now, not 10 min later with
        // the next one: the 2-h aggregate is written before that.
        if pst.end_unix_ns >= start.saturating_add(PLT_NS) {
            self.close_long(out);
        }
    }

    fn close_long(&mut self, out: &mut impl FnMut(FlickerOutput)) {
        let Some(long) = self.long.take() else {
            return;
        };
        let mut flags = long.flags;
        if long.count < PST_PER_PLT {
            flags |= FlickerFlags::INCOMPLETE;
        }
        out(FlickerOutput::Plt(SeverityValue {
            start_unix_ns: long.start,
            end_unix_ns: long.start + PLT_NS,
            value: (long.cubes / f64::from(long.count.max(1))).cbrt(),
            count: long.count,
            flags,
            lamp: self.lamp,
        }));
    }
}
