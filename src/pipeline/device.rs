//! One device's path through the pipeline: its sample blocks go through the
//! power-metrics engine; windows become table rows, 150/180-cycle, 10-minute
//! and packet-interval aggregates, and one BetterFleet reading per packet
//! interval. Single-threaded per device; the outputs it feeds are shared.

use std::sync::Arc;

use crate::dsp::aggregate::{ClockAggregator, CycleAggregator};
use crate::dsp::flicker::{FlickerOutput, FlickerValue};
use crate::dsp::nominal::NominalInference;
use crate::dsp::pq::PqTally;
use crate::dsp::wiring::WiringCheck;
use crate::dsp::{DeviceEngine, EngineConfig, EngineOutput, InvalidSamples};
use crate::model::identity::name_uuid;
use crate::model::run_report::{max_option, DeviceSummary};
use crate::model::{
    Aggregate, AggregateRow, CircuitReading, DeviceInfo, EnergyCounters, HalfCycleRms,
    HalfCycleRow, IntervalKind, LatchRow, LatchWindow, PinstRow, PqEvent, PqEventRow, RawBlock,
    Record, SensorInfo, SensorInterval, WindowMetrics, WindowRow, WiringStatus,
};
use crate::source::capture::SessionDescription;
use crate::source::event::SourceEvent;
use crate::wire::samples::SampleBlock;

use super::config::PipelineConfig;
use crate::source::component::{DeviceEngines, DeviceLane, RecordHandle};

/// Everything after the engine: aggregation and the rows and readings it feeds.
struct Downstream {
    device: DeviceInfo,
    sensor: SensorInfo,
    records: Arc<dyn RecordHandle>,
    cycles: CycleAggregator,
    ten_minutes: ClockAggregator,
    packet: ClockAggregator,
    /// 2-h aggregates (the `Plt` interval), only with `[dsp.pq.flicker]`.
    two_hours: Option<ClockAggregator>,
    /// PQ event counts and flicker values for aggregates and packets.
    pq: PqTally,
    /// The Udin of the `pq_events` rows, V, and whether it was inferred.
    udin: (f64, bool),
    /// Energy registers as of the last window handed on (mirrors the engine's).
    energy: EnergyCounters,
    /// Σ and count of line-to-line means in the packet interval in progress.
    line_voltage: (f64, u32),
    /// Σ P·t and Σ t over all windows, for the summary's mean P.
    p_time: (f64, f64),
    /// Latch windows of the packet interval in progress.
    latch_interval: LatchInterval,
    wiring: WiringCheck,
    /// Registers when this processor took over (restored ones count as before).
    energy_at_start: (f64, f64),
    /// End of the last window handed on, ns (what a checkpoint resumes after).
    covered_until_ns: Option<i64>,
    summary: DeviceSummary,
}

/// A device in the pipeline.
pub struct DeviceProcessor {
    engine: DeviceEngine,
    downstream: Downstream,
}

impl DeviceProcessor {
    pub fn new(
        session: &SessionDescription,
        config: &PipelineConfig,
        records: Arc<dyn RecordHandle>,
    ) -> anyhow::Result<Self> {
        let engine = DeviceEngine::inferring(
            &config.dsp,
            session.measures,
            session.rate,
            session.start_unix_ns,
        )?;
        let id = name_uuid(&session.device).as_u64_pair().0;
        let device = DeviceInfo::new(session.device.as_str(), id, session.measures);
        let sensor = session
            .info
            .as_ref()
            .map(SensorInfo::from_info_answer)
            .unwrap_or_default();
        let energy = engine.energy().clone();
        let udin = config.dsp.udin_v();
        Ok(DeviceProcessor {
            engine,
            downstream: Downstream {
                device,
                sensor,
                records,
                cycles: CycleAggregator::new().with_declared_voltage(udin),
                ten_minutes: ClockAggregator::ten_minutes().with_declared_voltage(udin),
                packet: ClockAggregator::new(config.aggregation.packet_interval_ns())
                    .with_declared_voltage(udin),
                two_hours: PqTally::flicker_enabled(&config.dsp)
                    .then(|| ClockAggregator::two_hours().with_declared_voltage(udin)),
                pq: PqTally::new(&config.dsp),
                udin: (udin, false),
                energy,
                line_voltage: (0.0, 0),
                p_time: (0.0, 0.0),
                energy_at_start: (0.0, 0.0),
                covered_until_ns: None,
                latch_interval: LatchInterval::new(config.aggregation.packet_interval_ns()),
                wiring: WiringCheck::new(),
                summary: DeviceSummary {
                    device: session.device.clone(),
                    measures: session.measures.to_string(),
                    rate: session.rate,
                    ..DeviceSummary::default()
                },
            },
        })
    }

    /// Continues a device's energy registers (a reconnect, a restart).
    pub fn restore_energy(&mut self, counters: EnergyCounters) {
        self.downstream.energy_at_start = (counters.total.import_wh, counters.total.export_wh);
        self.downstream.energy = counters.clone();
        self.engine.restore_energy(counters);
    }

    pub fn energy(&self) -> &EnergyCounters {
        self.engine.energy()
    }

    /// Windows (cycle or latch) handed on so far.
    pub fn windows(&self) -> u64 {
        self.downstream.summary.windows
    }

    /// The wiring checks' latest finding (for a live view); `None` before
    /// the first assessment or for latch layouts.
    pub fn wiring_status(&self) -> Option<&WiringStatus> {
        self.downstream.wiring.status()
    }

    /// Meter time up to which windows have been handed on, ns since the epoch.
    pub fn covered_until_ns(&self) -> Option<i64> {
        self.downstream.covered_until_ns
    }

    pub fn block(&mut self, block: &SampleBlock) {
        let downstream = &mut self.downstream;
        downstream.summary.samples += block.len() as u64;
        if block.gap_before > 0 {
            downstream.summary.lost_samples += block.gap_before;
        }
        downstream.records.tap_samples(&downstream.device, block);
        if downstream.records.wants_raw() {
            let raw = Record::Raw(RawBlock {
                device: downstream.device.clone(),
                block: block.clone(),
            });
            downstream.emit(raw);
        }
        if let Err(error) = self
            .engine
            .push_block(block, &mut |output| downstream.output(output))
        {
            downstream.note_output::<(), _>(Err(format!("engine refused a block: {error}")));
        }
    }

    pub fn event(&mut self, event: &SourceEvent) {
        self.downstream.event(event);
    }

    /// Ends the device: the last windows, the open intervals, its summary.
    pub fn finish(self) -> DeviceSummary {
        self.finish_with_registers().0
    }

    /// [`finish`](Self::finish), also returning the final energy registers
    /// and the meter time windows cover up to (what a checkpoint keeps).
    pub fn finish_with_registers(mut self) -> (DeviceSummary, EnergyCounters, Option<i64>) {
        let downstream = &mut self.downstream;
        self.engine.finish(&mut |output| downstream.output(output));
        downstream.wiring_at_end();
        downstream.flush_intervals();
        let finished = Record::DeviceFinished(downstream.device.name.clone());
        downstream.emit(finished);
        let counters = self.engine.energy();
        let summary = &mut downstream.summary;
        // What this device measured here; restored registers were counted before.
        let (import_at_start, export_at_start) = downstream.energy_at_start;
        summary.energy_imported_wh = counters.total.import_wh - import_at_start;
        summary.energy_exported_wh = counters.total.export_wh - export_at_start;
        let (pt, t) = downstream.p_time;
        summary.mean_p_w = (t > 0.0).then(|| pt / t);
        summary.pq_events = downstream.pq.totals();
        summary.wiring = downstream.wiring.status().cloned();
        (
            downstream.summary.clone(),
            counters.clone(),
            downstream.covered_until_ns,
        )
    }
}

impl Downstream {
    fn note_output<T, E: std::fmt::Display>(&mut self, result: Result<T, E>) {
        if let Err(error) = result {
            if self.summary.output_error.is_none() {
                tracing::error!(device = %self.device.name, "output failed: {error:#}");
                self.summary.output_error = Some(format!("{error:#}"));
            }
        }
    }

    fn emit(&mut self, record: Record) {
        let result = self.records.emit(record);
        self.note_output(result);
    }

    fn output(&mut self, output: EngineOutput<'_>) {
        match output {
            EngineOutput::Window(window) => self.window(window),
            EngineOutput::Latch(window) => self.latch(window),
            EngineOutput::PqEvent(event) => self.pq_event(event),
            EngineOutput::HalfCycle(value) => self.half_cycle(value),
            EngineOutput::Flicker(value) => self.flicker(&value),
            EngineOutput::InvalidSamples(run) => self.invalid_samples(&run),
            EngineOutput::Nominal { inference, config } => self.nominal(inference, config),
            EngineOutput::TenSecondFrequency(_) | EngineOutput::Cycle(_) => {}
        }
    }

    fn window(&mut self, window: &WindowMetrics) {
        self.covered_until_ns = Some(window.end_unix_ns);
        let summary = &mut self.summary;
        summary.windows += 1;
        summary.duration_s += window.duration_s;
        if !window.flags.is_clean() {
            summary.flagged_windows += 1;
        }
        self.p_time.0 += window.p_total_w * window.duration_s;
        self.p_time.1 += window.duration_s;
        // A flagged window's spectrum (a fragment, a gap) says little about THD.
        for phase in window
            .phases
            .iter()
            .flatten()
            .filter(|_| window.flags.is_clean())
        {
            summary.max_thd_v_pct = max_option(summary.max_thd_v_pct, phase.thd_v_pct);
            summary.max_thd_i_pct = max_option(summary.max_thd_i_pct, phase.thd_i_pct);
        }

        self.check_wiring(window);
        if let Some(done) = self.cycles.push(window) {
            self.write_aggregate(IntervalKind::Cycles150, done);
        }
        if let Some(done) = self.ten_minutes.push(window) {
            self.write_aggregate(IntervalKind::TenMinutes, done);
        }
        if let Some(done) = self.two_hours.as_mut().and_then(|a| a.push(window)) {
            self.write_aggregate(IntervalKind::TwoHours, done);
        }
        if let Some(done) = self.packet.push(window) {
            // The registers and line voltages still stand at the end of `done`.
            self.packet_interval(done);
        }
        self.energy.add_window(window);
        let line: Vec<f64> = window.line_to_line_v.iter().flatten().copied().collect();
        if !line.is_empty() {
            self.line_voltage.0 += line.iter().sum::<f64>() / line.len() as f64;
            self.line_voltage.1 += 1;
        }
        let row = WindowRow {
            device: self.device.clone(),
            metrics: window.clone(),
            energy: Some(self.energy.clone()),
        };
        self.emit(Record::Window(row));
    }

    /// Latch streams carry the meter's own P/Q or RMS values: they go to
    /// packets, averaged over the packet interval.
    fn latch(&mut self, window: &LatchWindow) {
        self.covered_until_ns = Some(window.end_unix_ns);
        self.summary.windows += 1;
        self.summary.duration_s += window.duration_s;
        if !window.flags.is_clean() {
            self.summary.flagged_windows += 1;
        }
        let p: Vec<f64> = window
            .phases
            .iter()
            .flatten()
            .filter_map(|p| p.p_w)
            .collect();
        if !p.is_empty() {
            self.p_time.0 += p.iter().sum::<f64>() * window.duration_s;
            self.p_time.1 += window.duration_s;
        }
        let slot = window
            .start_unix_ns
            .div_euclid(self.latch_interval.interval_ns);
        if self
            .latch_interval
            .slot
            .is_some_and(|current| current != slot)
        {
            self.latch_packet();
        }
        self.latch_interval.slot = Some(slot);
        let energies = [0, 1, 2].map(|k| window.phases[k].and_then(|p| p.energy_wh));
        self.energy.add_energies(energies, window.duration_s);
        self.latch_interval.push(window);
        let has_energy = energies.iter().any(Option::is_some);
        let row = LatchRow {
            device: self.device.clone(),
            window: window.clone(),
            energy: has_energy.then(|| self.energy.clone()),
        };
        self.emit(Record::Latch(row));
    }

    /// The packet reading of the latch interval in progress.
    fn latch_packet(&mut self) {
        let Some(slot) = self.latch_interval.slot.take() else {
            return;
        };
        let circuit = self.latch_interval.take(&self.energy);
        let end_ns = (slot + 1).saturating_mul(self.latch_interval.interval_ns);
        let sensor = SensorInterval {
            meter_name: self.device.name.to_string(),
            info: self.sensor.clone(),
            interval_end_ms: end_ns.div_euclid(1_000_000),
            circuit,
            passthrough: Vec::new(),
        };
        self.emit(Record::Sensor(sensor));
    }

    fn write_aggregate(&mut self, kind: IntervalKind, mut aggregate: Aggregate) {
        self.pq.fill(&mut aggregate);
        let row = AggregateRow {
            device: self.device.clone(),
            kind,
            aggregate,
        };
        self.emit(Record::Aggregate(row));
    }

    /// One packet-interval aggregate: a table row and a BetterFleet reading.
    fn packet_interval(&mut self, aggregate: Aggregate) {
        let line_voltage = match self.line_voltage {
            (sum, count) if count > 0 => Some(sum / f64::from(count)),
            _ => None,
        };
        self.line_voltage = (0.0, 0);
        let sensor = SensorInterval {
            meter_name: self.device.name.to_string(),
            info: self.sensor.clone(),
            interval_end_ms: aggregate.end_unix_ns.div_euclid(1_000_000),
            circuit: circuit_reading(&aggregate, line_voltage, &self.energy),
            passthrough: self.pq.take_passthrough(),
        };
        self.emit(Record::Sensor(sensor));
        self.write_aggregate(IntervalKind::Packet, aggregate);
    }

    fn flush_intervals(&mut self) {
        if let Some(done) = self.cycles.flush() {
            self.write_aggregate(IntervalKind::Cycles150, done);
        }
        if let Some(done) = self.ten_minutes.flush() {
            self.write_aggregate(IntervalKind::TenMinutes, done);
        }
        if let Some(done) = self.two_hours.as_mut().and_then(ClockAggregator::flush) {
            self.write_aggregate(IntervalKind::TwoHours, done);
        }
        if let Some(done) = self.packet.flush() {
            self.packet_interval(done);
        }
        self.latch_packet();
    }

    fn event(&mut self, event: &SourceEvent) {
        self.summary.events += 1;
        let row = event.to_row(&self.device);
        self.emit(Record::Event(row));
    }

    fn check_wiring(&mut self, window: &WindowMetrics) {
        if let Some(status) = self.wiring.push(window) {
            let status = status.clone();
            self.wiring_changed(&status, window.end_unix_ns);
        }
    }

    /// A stream too short for a regular assessment still gets one.
    fn wiring_at_end(&mut self) {
        if let (Some(status), Some(end)) = (self.wiring.finish(), self.covered_until_ns) {
            let status = status.clone();
            self.wiring_changed(&status, end);
        }
    }

    /// A changed wiring finding: counted, logged, and an `events` row.
    fn wiring_changed(&mut self, status: &WiringStatus, time_unix_ns: i64) {
        let message = status.to_string();
        if status.reason.is_fault() {
            tracing::warn!(device = %self.device.name, "wiring: {message}");
        } else {
            tracing::info!(device = %self.device.name, "wiring: {message}");
        }
        self.summary.events += 1;
        let row = crate::model::EventRow::new(
            self.device.clone(),
            time_unix_ns,
            crate::model::EventRowKind::Wiring,
            message,
        );
        self.emit(Record::Event(row));
    }

    /// A run of invalid samples: counted, and an `events` row.
    fn invalid_samples(&mut self, run: &InvalidSamples) {
        self.summary.events += 1;
        let row = crate::model::EventRow::new(
            self.device.clone(),
            run.start_unix_ns,
            crate::model::EventRowKind::InvalidSamples,
            format!(
                "{} invalid values (non-finite {}, largest finite {:e}) in samples {}..={}, \
                 channel mask {:#b}",
                run.values,
                run.non_finite,
                run.largest,
                run.first_sample,
                run.last_sample,
                run.channels
            ),
        );
        self.emit(Record::Event(row));
    }

    /// The meter's inferred Udin and frequency (before any window): the
    /// aggregates and PQ rows use them, and an `events` row says what they
    /// are or why there are none.
    fn nominal(&mut self, inference: &NominalInference, config: &EngineConfig) {
        let udin = config.declared_udin_v();
        self.cycles.set_declared_voltage(udin);
        self.ten_minutes.set_declared_voltage(udin);
        self.packet.set_declared_voltage(udin);
        self.two_hours = PqTally::flicker_enabled(config)
            .then(|| ClockAggregator::two_hours().with_declared_voltage(config.udin_v()));
        self.pq = PqTally::new(config);
        self.udin = (config.udin_v(), inference.infer_udin);
        self.summary.events += 1;
        let row = crate::model::EventRow::new(
            self.device.clone(),
            inference.start_unix_ns,
            crate::model::EventRowKind::Nominal,
            inference.message(),
        );
        self.emit(Record::Event(row));
    }

    /// A dip, swell, interruption or RVC: counted, and a `pq_events` row.
    fn pq_event(&mut self, event: &PqEvent) {
        self.pq.event(event);
        let row = PqEventRow {
            device: self.device.clone(),
            event: *event,
            udin_v: self.udin.0,
            udin_inferred: self.udin.1,
        };
        self.emit(Record::PqEvent(row));
    }

    /// `Pst`/`Plt` go to the aggregates and packets; `Pinst` slots (with
    /// `keep_pinst`) are rows of their own.
    fn flicker(&mut self, value: &FlickerValue) {
        if let FlickerOutput::Pinst(slot) = value.output {
            let row = PinstRow {
                device: self.device.clone(),
                phase: value.phase,
                value: slot,
            };
            self.emit(Record::Pinst(row));
        } else {
            self.pq.flicker(value);
        }
    }

    /// A `Urms(1/2)` value (with `keep_half_cycle`): a `half_cycle` row.
    fn half_cycle(&mut self, value: &HalfCycleRms) {
        let row = HalfCycleRow {
            device: self.device.clone(),
            value: *value,
        };
        self.emit(Record::HalfCycle(row));
    }
}

/// Time-weighted sums of latch values over one packet interval.
struct LatchInterval {
    interval_ns: i64,
    slot: Option<i64>,
    /// Per phase: Σ P·t, Σ Q·t, Σ V²·t, Σ I²·t and the time each was present.
    sums: [[(f64, f64); 4]; 3],
}

impl LatchInterval {
    fn new(interval_ns: i64) -> Self {
        LatchInterval {
            interval_ns: interval_ns.max(1),
            slot: None,
            sums: [[(0.0, 0.0); 4]; 3],
        }
    }

    fn push(&mut self, window: &LatchWindow) {
        let t = window.duration_s;
        for (k, phase) in window.phases.iter().enumerate() {
            let Some(phase) = phase else { continue };
            let values = [
                phase.p_w,
                phase.q_var,
                phase.v_rms_v.map(|v| v * v),
                phase.i_rms_a.map(|i| i * i),
            ];
            for (sum, value) in self.sums[k].iter_mut().zip(values) {
                if let Some(value) = value.filter(|v| v.is_finite()) {
                    sum.0 += value * t;
                    sum.1 += t;
                }
            }
        }
    }

    /// The interval's reading (means, RMS of RMS values); resets the sums.
    fn take(&mut self, energy: &EnergyCounters) -> CircuitReading {
        let sums = std::mem::replace(&mut self.sums, [[(0.0, 0.0); 4]; 3]);
        let per_phase = |q: usize| -> Vec<f64> {
            sums.iter()
                .filter(|s| s[q].1 > 0.0)
                .map(|s| s[q].0 / s[q].1)
                .collect()
        };
        let total = |values: Vec<f64>| (!values.is_empty()).then(|| values.iter().sum::<f64>());
        let p = per_phase(0);
        let q = per_phase(1);
        let v: Vec<f64> = per_phase(2).into_iter().map(f64::sqrt).collect();
        let i: Vec<f64> = per_phase(3).into_iter().map(f64::sqrt).collect();
        let has_power = !p.is_empty();
        CircuitReading {
            current_a: total(i),
            voltage_v: (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64),
            total_power_w: total(p),
            total_reactive_var: total(q),
            energy_imported_wh: has_power.then_some(energy.total.import_wh),
            energy_exported_wh: has_power.then_some(energy.total.export_wh),
            ..CircuitReading::default()
        }
    }
}

/// The 16 circuit measurands of one packet interval (betterfleet-mapping.md).
pub fn circuit_reading(
    aggregate: &Aggregate,
    line_voltage_v: Option<f64>,
    energy: &EnergyCounters,
) -> CircuitReading {
    let phases: Vec<_> = aggregate.phases.iter().flatten().collect();
    let present = !phases.is_empty() && aggregate.windows > 0;
    let thd = |f: fn(&crate::model::PhaseAggregate) -> Option<f64>| {
        [0, 1, 2].map(|k| aggregate.phases[k].as_ref().and_then(f))
    };
    CircuitReading {
        current_a: present.then(|| phases.iter().map(|p| p.i_rms_a.value).sum()),
        frequency_hz: aggregate.frequency_hz.map(|f| f.value),
        voltage_v: present
            .then(|| phases.iter().map(|p| p.v_rms_v.value).sum::<f64>() / phases.len() as f64),
        line_voltage_v,
        total_power_w: present.then_some(aggregate.p_total_w.value),
        total_reactive_var: present.then_some(aggregate.q1_total_var.value),
        total_apparent_va: present.then_some(aggregate.s_total_va.value),
        total_power_factor: aggregate.pf_total,
        thd_v_pct: thd(|p| p.thd_v_pct),
        thd_i_pct: thd(|p| p.thd_i_pct),
        energy_imported_wh: Some(energy.total.import_wh),
        energy_exported_wh: Some(energy.total.export_wh),
    }
}

impl DeviceLane for DeviceProcessor {
    fn block(&mut self, block: &SampleBlock) {
        DeviceProcessor::block(self, block)
    }

    fn event(&mut self, event: &SourceEvent) {
        DeviceProcessor::event(self, event)
    }

    fn restore_energy(&mut self, energy: EnergyCounters) {
        DeviceProcessor::restore_energy(self, energy)
    }

    fn energy(&self) -> &EnergyCounters {
        DeviceProcessor::energy(self)
    }

    fn finish(self: Box<Self>) -> DeviceSummary {
        DeviceProcessor::finish(*self)
    }
}

/// Device processors of a run's config whose records go to its bus.
pub struct DeviceFactory {
    pub config: PipelineConfig,
    pub records: Arc<dyn RecordHandle>,
}

impl DeviceEngines for DeviceFactory {
    fn open(&self, session: &SessionDescription) -> anyhow::Result<Box<dyn DeviceLane>> {
        let processor = DeviceProcessor::new(session, &self.config, Arc::clone(&self.records))?;
        Ok(Box::new(processor))
    }
}
