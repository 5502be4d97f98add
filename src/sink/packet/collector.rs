//! Per-interval readings waiting to become packets: every sensor that
//! reported in an interval goes into that interval's packets, built once the
//! interval is old enough for late windows to have arrived.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;

use super::build::PacketConfig;
use super::deliver::{Deliverer, DeliveryConfig, TargetStats};
use super::model::Sensor;
use super::PacketBuilder;
use crate::model::latency::LatencyRecorder;
use crate::model::{SensorInterval, SensorReadings};

/// One sensor's share of an interval.
enum Pending {
    /// A meter's interval: one object per interval and meter.
    Meter(Sensor),
    /// A telemetry device's values, merged over the interval's batches.
    Readings(SensorReadings),
}

/// An interval's sensors by name, when the last one reported, and the
/// lowest record seq among them (0: not from the record log).
struct PendingInterval {
    sensors: BTreeMap<String, Pending>,
    last_added: Instant,
    min_seq: u64,
}

/// Readings waiting per interval, and the deliverer their packets go to.
pub struct PacketCollector {
    builder: PacketBuilder,
    deliverer: Deliverer,
    /// Interval end (ms) → the sensors that reported in it.
    pending: Mutex<BTreeMap<i64, PendingInterval>>,
    built: Mutex<u64>,
    /// From an interval's last reading to its packets being handed to delivery.
    pub latency: LatencyRecorder,
}

impl PacketCollector {
    /// Starts delivery (needs a tokio runtime).
    pub fn start(build: &PacketConfig, targets: &DeliveryConfig) -> anyhow::Result<Self> {
        let builder = PacketBuilder::new(build).context("packet identities")?;
        let deliverer = Deliverer::start(targets, builder.gateway().device_id)
            .context("starting packet delivery")?;
        Ok(PacketCollector {
            builder,
            deliverer,
            pending: Mutex::new(BTreeMap::new()),
            built: Mutex::new(0),
            latency: LatencyRecorder::default(),
        })
    }

    fn interval(
        pending: &mut BTreeMap<i64, PendingInterval>,
        end_ms: i64,
        seq: u64,
    ) -> &mut PendingInterval {
        let interval = pending.entry(end_ms).or_insert_with(|| PendingInterval {
            sensors: BTreeMap::new(),
            last_added: Instant::now(),
            min_seq: 0,
        });
        interval.last_added = Instant::now();
        if seq > 0 && (interval.min_seq == 0 || seq < interval.min_seq) {
            interval.min_seq = seq;
        }
        interval
    }

    /// Queues one sensor's reading for its interval.
    pub fn add(&self, reading: SensorInterval) {
        self.add_from(0, reading);
    }

    /// [`Self::add`] of a reading from record log entry `seq`.
    pub fn add_from(&self, seq: u64, reading: SensorInterval) {
        let sensor = self.builder.sensor(&reading);
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let interval = Self::interval(&mut pending, reading.interval_end_ms, seq);
        interval
            .sensors
            .insert(reading.meter_name, Pending::Meter(sensor));
    }

    /// Queues what a non-meter device reported in the interval ending at
    /// `interval_end_ms`; several batches of one device in one interval
    /// become one sensor object.
    pub fn add_readings(&self, interval_end_ms: i64, readings: SensorReadings) {
        self.add_readings_from(0, interval_end_ms, readings);
    }

    /// [`Self::add_readings`] of readings from record log entry `seq`.
    pub fn add_readings_from(&self, seq: u64, interval_end_ms: i64, readings: SensorReadings) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let interval = Self::interval(&mut pending, interval_end_ms, seq);
        match interval.sensors.get_mut(&readings.name) {
            Some(Pending::Readings(known)) => {
                known.values.extend(readings.values);
                known.model = known.model.take().or(readings.model);
            }
            _ => {
                interval
                    .sensors
                    .insert(readings.name.clone(), Pending::Readings(readings));
            }
        }
    }

    /// Builds and sends the packets of every interval that ended before
    /// `end_ms`; returns how many packets and the lowest record seq in them.
    ///
    /// A packet's timestamp is its interval's end (plus its part number when
    /// the interval needs several), so a packet built again after a restart
    /// has the identity it had the first time.
    pub fn flush_before(&self, end_ms: i64) -> anyhow::Result<(u64, Option<u64>)> {
        let ready: Vec<(i64, PendingInterval)> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let later = pending.split_off(&end_ms);
            std::mem::replace(&mut *pending, later)
                .into_iter()
                .collect()
        };
        let mut sent = 0u64;
        let mut min_seq: Option<u64> = None;
        for (interval_end_ms, interval) in ready {
            if interval.min_seq > 0 {
                min_seq = Some(min_seq.map_or(interval.min_seq, |s| s.min(interval.min_seq)));
            }
            let sensors = interval
                .sensors
                .into_values()
                .map(|pending| match pending {
                    Pending::Meter(sensor) => sensor,
                    Pending::Readings(readings) => self.builder.sensor_from_readings(&readings),
                })
                .collect();
            for packet in self.builder.packets(sensors, interval_end_ms) {
                self.deliverer.send(&packet)?;
                self.latency.record(interval.last_added.elapsed());
                sent += 1;
            }
        }
        *self.built.lock().unwrap_or_else(|e| e.into_inner()) += sent;
        Ok((sent, min_seq))
    }

    /// The lowest record seq among readings not yet built into packets.
    pub fn pending_min_seq(&self) -> Option<u64> {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending
            .values()
            .map(|i| i.min_seq)
            .filter(|seq| *seq > 0)
            .min()
    }

    pub fn deliverer(&self) -> &Deliverer {
        &self.deliverer
    }

    pub fn spooled(&self) -> u64 {
        self.deliverer.spooled()
    }

    pub fn built(&self) -> u64 {
        *self.built.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn targets(&self) -> Vec<TargetStats> {
        self.deliverer.stats()
    }

    /// Sends what is left and waits up to `drain_timeout` for the targets;
    /// what they did not take stays in the spool for the next run.
    pub async fn close(
        self,
        drain_timeout: std::time::Duration,
    ) -> anyhow::Result<(u64, u64, Vec<TargetStats>)> {
        self.flush_before(i64::MAX)?;
        let built = self.built();
        let spooled = self.spooled();
        let targets = self.deliverer.shutdown(drain_timeout).await?;
        Ok((built, spooled, targets))
    }
}
