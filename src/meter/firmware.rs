//! One virtual SmartMeter on one connection: the firmware's protocol as a
//! state machine (idle ⇄ sampling) over any `AsyncRead + AsyncWrite`.
//!
//! What a real meter does (see `smartmeter-firmware-facts.md` and the
//! firmware's `Version_2.ino`/`parseCommand.ino`): the device info first,
//! a lifeness log line every second while idle, sampling only on `sample`,
//! `Data:` chunks only while more than one chunk is buffered, a rate report
//! about once a second, and on `stop` the tail chunk, then the stop answer.
//! Samples are taken by time into a bounded buffer; when the sink does not
//! read, samples are dropped and reported (`[E] MISSED n SAMPLES`), never
//! queued without bound. Nothing the sink sends can end the meter but a
//! closed connection.

use std::collections::VecDeque;
use std::io;
use std::io::IoSlice;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::{sleep_until, Instant};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::capture::CaptureFile;
use super::out_queue::{OutQueue, MAX_WRITE_PARTS};
use super::pacing::{Pacing, SampleBuffer, SampleClock, FIRMWARE_BUFFER_SIZE};
use super::signal::{SignalConfig, SignalError, SignalGenerator};
use crate::wire::command::{
    Command, CommandCodec, CommandError, SampleParams, StreamType, FIRMWARE_MAX_COMMAND,
};
use crate::wire::frame::{data_header, put_info_line};
use crate::wire::layout::{chunk_size, Measures, Transport, DEFAULT_RATE};
use crate::wire::message::{
    Answer, DeviceState, ErrorAnswer, InfoAnswer, LogLevel, SampleAnswer, StartTs, StopAnswer,
    SETUP_DONE,
};

/// Chunks are framed into the output only while it holds less than this:
/// data leaves the sample buffer when the socket can take it.
const OUT_LOW: usize = 16 * 1024;
/// Above this much unsent output, commands are not read (back-pressure on a
/// sink that sends but does not read) and log lines are skipped.
const OUT_HIGH: usize = 256 * 1024;
/// In fast mode, chunks kept ready ahead of the socket.
const FAST_AHEAD_CHUNKS: u64 = 8;
/// Real-time pacing's default wake period: about two chunks of 6 channels
/// at 8 kHz per write, as a busy firmware loop hands lwIP what it has.
pub const DEFAULT_SEND_INTERVAL: Duration = Duration::from_millis(10);
/// Warning and error lines kept for `getLog`.
const STORED_LOG_LINES: usize = 100;
/// Longest mDNS name the firmware stores (`MAX_NAME_LEN` minus the NUL).
const MAX_NAME_LEN: usize = 30;
/// `__DATE__ " " __TIME__` of the firmware build the virtual meter imitates.
const COMPILED: &str = "Mar  2 2021 09:57:58";
const DEFAULT_SSID: &str = "energywifi";
const DEFAULT_TIME_SERVER: &str = "time.google.com";

/// When a sampling session ends by itself (demos, tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionLimit {
    /// After this much sampled time (duration × rate samples).
    Duration(Duration),
    /// After this many samples.
    Samples(u64),
}

impl SessionLimit {
    /// The number of samples after which the session stops.
    pub fn samples_at(self, rate: u32) -> u64 {
        match self {
            SessionLimit::Samples(n) => n,
            SessionLimit::Duration(d) => {
                let n = d.as_nanos() * u128::from(rate) / 1_000_000_000;
                u64::try_from(n).unwrap_or(u64::MAX)
            }
        }
    }
}

/// Fixed settings of one virtual meter.
#[derive(Debug, Clone)]
pub struct MeterSettings {
    /// The mDNS name, e.g. `smartmeter001`.
    pub name: String,
    /// The address reported in device info and stop answers.
    pub ip: String,
    /// The signal on the meter's terminals (its `seed` makes meters differ).
    pub signal: SignalConfig,
    pub pacing: Pacing,
    /// Real-time pacing takes samples and writes the chunks ready at most
    /// this often: longer periods put more chunks in one write (fewer
    /// wakes and sends for a load generator; the frames stay the same).
    pub send_interval: Duration,
    /// Sample buffer bytes (the firmware's `buffer_size`).
    pub buffer_size: usize,
    /// Idle lifeness line period (1 s on the firmware).
    pub lifeness_interval: Duration,
    /// Rate report period while sampling (about 1 s on the firmware).
    pub report_interval: Duration,
    /// Stop each sampling session by itself after this, then disconnect.
    pub limit: Option<SessionLimit>,
    /// Shown as `stream_server` in the device info.
    pub stream_server: String,
    /// Layout of the raw (ffmpeg) port.
    pub raw_measures: Measures,
    /// Rate of the raw (ffmpeg) port.
    pub raw_rate: u32,
}

impl MeterSettings {
    /// Firmware defaults for a meter called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        MeterSettings {
            name: name.into(),
            ip: "127.0.0.1".to_string(),
            signal: SignalConfig::default(),
            pacing: Pacing::RealTime,
            send_interval: DEFAULT_SEND_INTERVAL,
            buffer_size: FIRMWARE_BUFFER_SIZE,
            lifeness_interval: Duration::from_secs(1),
            report_interval: Duration::from_secs(1),
            limit: None,
            stream_server: "-".to_string(),
            raw_measures: Measures::ThreePhase,
            raw_rate: DEFAULT_RATE,
        }
    }
}

/// Why a meter was refused at construction.
#[derive(Debug, thiserror::Error)]
pub enum MeterError {
    #[error("meter {name}: invalid signal configuration: {source}")]
    Signal {
        name: String,
        #[source]
        source: SignalError,
    },
    #[error("meter {name}: raw port settings refused: {reason}")]
    Raw { name: String, reason: String },
}

/// How one connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionEnd {
    /// The peer closed the connection (or it broke).
    PeerClosed,
    /// The cancellation token fired.
    Cancelled,
    /// A session reached its [`SessionLimit`]; tail and stop answer were sent.
    LimitReached,
    /// `restart`, `factoryReset` or `basicReset`: the meter drops the link.
    Restart,
}

/// What happened on one connection.
#[derive(Debug, Clone)]
pub struct ConnectionReport {
    pub end: ConnectionEnd,
    /// Sampling sessions started.
    pub sessions: u64,
    /// Samples framed and sent (all sessions).
    pub sent_samples: u64,
    /// Samples dropped because the buffer was full (all sessions).
    pub dropped_samples: u64,
    /// Bytes written to the socket.
    pub bytes_written: u64,
    /// Set when the capture could not be written (the connection went on).
    pub capture_error: Option<String>,
}

/// Settings and counters that outlive a connection, like the firmware's flash.
#[derive(Debug)]
struct MeterState {
    name: String,
    ip: String,
    mqtt_server: String,
    stream_server: String,
    time_server: String,
    calibration: [f64; 6],
    ssids: Vec<String>,
    daily_reset: (i8, i8),
    energy_wh: [f64; 3],
    energy_reset_secs: u64,
    energy_updated: Instant,
    last_rate: u32,
    busy: bool,
    stored_log: VecDeque<String>,
    boot: Instant,
}

impl MeterState {
    fn new(settings: &MeterSettings) -> Self {
        let now = Instant::now();
        MeterState {
            name: settings.name.clone(),
            ip: settings.ip.clone(),
            mqtt_server: "-".to_string(),
            stream_server: settings.stream_server.clone(),
            time_server: DEFAULT_TIME_SERVER.to_string(),
            calibration: [1.0; 6],
            ssids: vec![DEFAULT_SSID.to_string()],
            daily_reset: (-1, -1),
            energy_wh: [0.0; 3],
            energy_reset_secs: unix_millis() / 1000,
            energy_updated: now,
            last_rate: DEFAULT_RATE,
            busy: false,
            stored_log: VecDeque::new(),
            boot: now,
        }
    }

    /// Adds the energy since the last update at the signal's true power.
    fn update_energy(&mut self, signal: &SignalConfig, now: Instant) {
        let hours = now
            .saturating_duration_since(self.energy_updated)
            .as_secs_f64()
            / 3600.0;
        let t = now.saturating_duration_since(self.boot).as_secs_f64();
        let truth = signal.truth_at(t);
        for (energy, phase) in self.energy_wh.iter_mut().zip(truth.phases.iter()) {
            *energy += phase.p_w * hours;
        }
        self.energy_updated = now;
    }
}

/// A virtual SmartMeter. Cheap to clone: clones share the meter's state, so
/// several connections (command port clients) see one device.
#[derive(Debug, Clone)]
pub struct VirtualMeter {
    settings: Arc<MeterSettings>,
    state: Arc<Mutex<MeterState>>,
}

impl VirtualMeter {
    /// Checks the signal and raw-port settings once, so sessions cannot fail on them.
    pub fn new(settings: MeterSettings) -> Result<Self, MeterError> {
        settings
            .signal
            .validate()
            .map_err(|source| MeterError::Signal {
                name: settings.name.clone(),
                source,
            })?;
        settings
            .raw_measures
            .validate_rate(settings.raw_rate)
            .map_err(|e| MeterError::Raw {
                name: settings.name.clone(),
                reason: e.to_string(),
            })?;
        let state = MeterState::new(&settings);
        Ok(VirtualMeter {
            settings: Arc::new(settings),
            state: Arc::new(Mutex::new(state)),
        })
    }

    pub fn settings(&self) -> &MeterSettings {
        &self.settings
    }

    /// The current name (`mdns` renames it).
    pub fn name(&self) -> String {
        self.state().name.clone()
    }

    /// Sets the IP the meter reports (the local address of its connection).
    pub fn set_ip(&self, ip: impl Into<String>) {
        self.state().ip = ip.into();
    }

    fn state(&self) -> MutexGuard<'_, MeterState> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the command protocol (stream-server or command-port connection)
    /// until the peer leaves, `cancel` fires, a session limit or a restart.
    /// Every byte written is also given to `capture`.
    pub async fn serve<S>(
        &self,
        stream: S,
        cancel: &CancellationToken,
        capture: Option<&mut CaptureFile>,
    ) -> io::Result<ConnectionReport>
    where
        S: AsyncRead + AsyncWrite,
    {
        let conn = Connection::new(self.clone(), false);
        conn.run(stream, cancel, capture).await
    }

    /// Runs the raw (ffmpeg) port: bare f32le samples from the first byte,
    /// no prefix, no Info lines; whatever the peer sends is ignored.
    pub async fn serve_raw<S>(
        &self,
        stream: S,
        cancel: &CancellationToken,
        capture: Option<&mut CaptureFile>,
    ) -> io::Result<ConnectionReport>
    where
        S: AsyncRead + AsyncWrite,
    {
        let conn = Connection::new(self.clone(), true);
        conn.run(stream, cancel, capture).await
    }
}

/// Unix time in milliseconds (0 before 1970).
fn unix_millis() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// One sampling session.
#[derive(Debug)]
struct Session {
    buffer: SampleBuffer,
    clock: SampleClock,
    start_ts: StartTs,
    chunk_bytes: usize,
    prefix: bool,
    /// Clear to send (`cts`); off from the start with flow control.
    rts: bool,
    /// Pending `reqSamples`, each sent as one chunk once buffered.
    requests: VecDeque<u64>,
    packet: u32,
    sent_samples: u64,
    limit: Option<u64>,
    next_report: Instant,
    taken_at_report: u64,
    report_at: Instant,
}

impl Session {
    fn samples_per_chunk(&self) -> u64 {
        (self.chunk_bytes / self.buffer.bytes_per_sample()).max(1) as u64
    }

    fn limit_reached(&self) -> bool {
        self.limit.is_some_and(|limit| self.buffer.taken() >= limit)
    }

    /// Takes the samples due by `now` (real time) or needed ahead of the
    /// socket (fast), never beyond the limit.
    fn take_due(&mut self, pacing: Pacing, now: Instant) {
        let taken = self.buffer.taken();
        let target = match pacing {
            Pacing::RealTime => self.clock.due(now),
            Pacing::Fast => {
                if !self.rts && self.requests.is_empty() {
                    taken
                } else {
                    let ahead = (self.samples_per_chunk() * FAST_AHEAD_CHUNKS + 1)
                        .max(self.requests.front().copied().unwrap_or(0));
                    let want = ahead.saturating_sub(self.buffer.buffered_samples());
                    taken + want.min(self.buffer.room())
                }
            }
        };
        let target = self.limit.map_or(target, |limit| target.min(limit));
        if target > taken {
            self.buffer.take_samples(target - taken);
        }
    }

    /// Writes one chunk of `bytes` buffered bytes to `out`.
    fn frame(&mut self, out: &mut OutQueue, bytes: usize) {
        let bytes = bytes.min(self.buffer.buffered_bytes());
        if bytes == 0 {
            return;
        }
        if self.prefix {
            // Chunks are at most 2000 samples of 24 bytes, far below u16::MAX.
            let len = u16::try_from(bytes).unwrap_or(u16::MAX);
            out.push_small(&data_header(len, self.packet));
            self.packet = self.packet.wrapping_add(1);
        }
        self.buffer.take_into(bytes, out);
        self.sent_samples += (bytes / self.buffer.bytes_per_sample()) as u64;
    }

    /// Frames what may be sent now, while the output is short.
    fn frame_ready(&mut self, out: &mut OutQueue) {
        let bps = self.buffer.bytes_per_sample();
        while out.len() < OUT_LOW {
            if let Some(&request) = self.requests.front() {
                let bytes = usize::try_from(request)
                    .unwrap_or(usize::MAX)
                    .saturating_mul(bps);
                if self.buffer.buffered_bytes() >= bytes {
                    self.requests.pop_front();
                    self.frame(out, bytes);
                    continue;
                }
            }
            if self.rts && self.buffer.buffered_bytes() > self.chunk_bytes {
                self.frame(out, self.chunk_bytes);
                continue;
            }
            break;
        }
    }

    /// Everything buffered, in whole chunks and then the shorter tail.
    fn frame_tail(&mut self, out: &mut OutQueue) {
        while self.buffer.buffered_bytes() > self.chunk_bytes {
            self.frame(out, self.chunk_bytes);
        }
        let rest = self.buffer.buffered_bytes();
        self.frame(out, rest);
    }
}

/// The state of one connection.
struct Connection {
    meter: VirtualMeter,
    raw: bool,
    log_level: LogLevel,
    out: OutQueue,
    session: Option<Session>,
    next_lifeness: Instant,
    closing: Option<ConnectionEnd>,
    sessions: u64,
    sent_samples: u64,
    dropped_samples: u64,
}

impl Connection {
    fn new(meter: VirtualMeter, raw: bool) -> Self {
        let next_lifeness = Instant::now() + meter.settings.lifeness_interval;
        Connection {
            meter,
            raw,
            log_level: LogLevel::Info,
            out: OutQueue::default(),
            session: None,
            next_lifeness,
            closing: None,
            sessions: 0,
            sent_samples: 0,
            dropped_samples: 0,
        }
    }

    fn settings(&self) -> &MeterSettings {
        &self.meter.settings
    }

    async fn run<S>(
        mut self,
        stream: S,
        cancel: &CancellationToken,
        mut capture: Option<&mut CaptureFile>,
    ) -> io::Result<ConnectionReport>
    where
        S: AsyncRead + AsyncWrite,
    {
        let (read, mut write) = tokio::io::split(stream);
        let mut commands = FramedRead::new(
            read,
            CommandCodec::with_max_line_length(FIRMWARE_MAX_COMMAND),
        );
        let mut bytes_written = 0u64;
        let mut capture_error = None;

        if self.raw {
            let (measures, rate) = (self.settings().raw_measures, self.settings().raw_rate);
            if let Err(reason) = self.start_session(measures, rate, false, false) {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, reason));
            }
        } else {
            self.send_device_info();
        }

        let end = loop {
            let now = Instant::now();
            self.tick(now);
            // What the socket takes at once goes now, not after a turn
            // through the select; then sample again (fast pacing refills
            // at once, real time finds nothing due and goes on to wait).
            // When the socket is full, or the task's budget spent, the
            // write waits in the select with the commands.
            if !self.out.is_empty() {
                if let Some(result) = write_front(&mut write, &self.out).now_or_never() {
                    let Some(n) = written(result)? else {
                        break ConnectionEnd::PeerClosed;
                    };
                    bytes_written += n as u64;
                    self.take_written(n, &mut capture, &mut capture_error);
                    continue;
                }
            }
            if let Some(end) = self.closing {
                if self.out.is_empty() {
                    break end;
                }
            }
            let wake = self.next_wake(now);
            let read_ready = self.closing.is_none() && self.out.len() < OUT_HIGH;
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break ConnectionEnd::Cancelled,
                // Commands before data: a sink that reads as fast as we
                // write must still get its `stop` through.
                item = commands.next(), if read_ready => match item {
                    None => break ConnectionEnd::PeerClosed,
                    Some(Err(e)) if is_disconnect(&e) => break ConnectionEnd::PeerClosed,
                    Some(Err(e)) => return Err(e),
                    Some(Ok(command)) => {
                        if !self.raw {
                            self.handle(command, Instant::now());
                        }
                    }
                },
                result = write_front(&mut write, &self.out), if !self.out.is_empty() => {
                    let Some(n) = written(result)? else {
                        break ConnectionEnd::PeerClosed;
                    };
                    bytes_written += n as u64;
                    self.take_written(n, &mut capture, &mut capture_error);
                }
                _ = sleep_until(wake) => {}
            }
        };
        if end != ConnectionEnd::PeerClosed {
            // Best effort: the peer sees a clean close, not a reset.
            let _ = write.shutdown().await;
        }
        if let Some(session) = self.session.take() {
            self.end_session_bookkeeping(&session);
        }
        Ok(ConnectionReport {
            end,
            sessions: self.sessions,
            sent_samples: self.sent_samples,
            dropped_samples: self.dropped_samples,
            bytes_written,
            capture_error,
        })
    }

    /// Takes `n` written bytes off the output, into the capture file if
    /// there is one (a failing capture stops, with its error kept).
    fn take_written(
        &mut self,
        n: usize,
        capture: &mut Option<&mut CaptureFile>,
        capture_error: &mut Option<String>,
    ) {
        let mut record_error = None;
        self.out.advance(n, &mut |piece| {
            if let Some(file) = capture.as_deref_mut() {
                if let Err(e) = file.record(piece) {
                    record_error = Some(e);
                    *capture = None;
                }
            }
        });
        if let Some(e) = record_error {
            tracing::warn!(meter = %self.meter.name(), error = %e, "capture stopped");
            *capture_error = Some(format!("{e:#}"));
        }
    }

    /// Samples, chunks, periodic lines and the session limit, at `now`.
    fn tick(&mut self, now: Instant) {
        let pacing = self.settings().pacing;
        let report_interval = self.settings().report_interval;
        let lifeness_interval = self.settings().lifeness_interval;
        let Some(session) = self.session.as_mut() else {
            if now >= self.next_lifeness {
                self.next_lifeness = later(self.next_lifeness, lifeness_interval, now);
                self.update_energy(now);
                self.log(LogLevel::Info, "");
            }
            return;
        };
        session.take_due(pacing, now);
        let mut lines = Vec::new();
        if now >= session.next_report {
            session.next_report = later(session.next_report, report_interval, now);
            let taken = session.buffer.taken();
            let secs = now
                .saturating_duration_since(session.report_at)
                .as_secs_f64();
            if secs > 0.0 {
                let rate = (taken - session.taken_at_report) as f64 / secs;
                lines.push((LogLevel::Info, format!("{rate:.2}Hz, {taken}s")));
            }
            session.taken_at_report = taken;
            session.report_at = now;
            let missed = session.buffer.take_unreported_drops();
            if missed > 0 {
                lines.push((LogLevel::Error, format!("MISSED {missed} SAMPLES")));
            }
        }
        let limit_reached = session.limit_reached();
        for (level, line) in lines {
            self.log(level, &line);
        }
        if limit_reached {
            self.stop_sampling(now);
            self.closing = Some(ConnectionEnd::LimitReached);
        } else if let Some(session) = self.session.as_mut() {
            session.frame_ready(&mut self.out);
        }
    }

    /// The next instant something is due (a sample batch, a periodic line).
    fn next_wake(&self, now: Instant) -> Instant {
        let far = now + Duration::from_secs(3600);
        let Some(session) = self.session.as_ref() else {
            return self.next_lifeness.min(far);
        };
        let mut wake = session.next_report;
        if self.settings().pacing == Pacing::RealTime {
            let rate = u128::from(self.settings_rate(session));
            let per_wake = rate * self.settings().send_interval.as_nanos() / 1_000_000_000;
            let step = session
                .samples_per_chunk()
                .max(u64::try_from(per_wake).unwrap_or(u64::MAX))
                .max(1);
            let taken = session.buffer.taken();
            let next = taken.saturating_add(step);
            let target = session.limit.map_or(next, |l| next.min(l));
            if target > taken {
                wake = wake.min(session.clock.instant_of(target));
            }
        }
        wake.min(far)
    }

    fn settings_rate(&self, session: &Session) -> u32 {
        session.buffer.generator().rate()
    }

    fn update_energy(&self, now: Instant) {
        let signal = &self.meter.settings.signal;
        self.meter.state().update_energy(signal, now);
    }

    // -- output ------------------------------------------------------------

    fn put_line(&mut self, text: &str) {
        if !self.raw {
            put_info_line(self.out.tail(), text);
        }
    }

    fn put_json<T: Serialize>(&mut self, value: &T) {
        match serde_json::to_string(value) {
            Ok(text) => self.put_line(&text),
            Err(e) => tracing::error!(error = %e, "answer did not serialize"),
        }
    }

    /// A firmware log line, `[L]MM/DD HH:MM:SS: message`, if the connection's
    /// level lets it through; warnings and errors are also kept for `getLog`.
    fn log(&mut self, level: LogLevel, message: &str) {
        let stamp = chrono::Local::now().format("%m/%d %H:%M:%S");
        let line = format!("[{}]{stamp}: {message}", level.letter());
        if level >= LogLevel::Warning {
            let mut state = self.meter.state();
            if state.stored_log.len() >= STORED_LOG_LINES {
                state.stored_log.pop_front();
            }
            state.stored_log.push_back(line.clone());
        }
        if level >= self.log_level && self.out.len() < OUT_HIGH {
            self.put_line(&line);
        }
    }

    fn answer(&mut self, cmd: &str, msg: Option<String>, error: bool, extra: Map<String, Value>) {
        let answer = Answer {
            error,
            cmd: Some(cmd.to_string()),
            msg,
            extra,
        };
        self.put_json(&answer);
    }

    fn ok(&mut self, cmd: &str, msg: impl Into<String>) {
        self.answer(cmd, Some(msg.into()), false, Map::new());
    }

    fn error(&mut self, cmd: Option<&str>, msg: impl Into<String>) {
        self.put_json(&ErrorAnswer::new(cmd, msg));
    }

    fn send_device_info(&mut self) {
        let busy = self.session.is_some();
        let info = {
            let state = self.meter.state();
            let mut info = InfoAnswer::new(state.name.clone(), state.ip.clone());
            info.compiled = Some(COMPILED.to_string());
            info.sys_time = Some(
                chrono::Local::now()
                    .format("%m/%d/%Y %H:%M:%S%.3f")
                    .to_string(),
            );
            info.mqtt_server = Some(state.mqtt_server.clone());
            info.stream_server = Some(state.stream_server.clone());
            info.time_server = Some(state.time_server.clone());
            info.sampling_rate = Some(state.last_rate);
            info.buffer_size = Some(self.meter.settings.buffer_size as u64);
            info.psram = Some(true);
            info.rtc = Some(true);
            info.state = Some(if busy {
                DeviceState::Busy
            } else {
                DeviceState::Idle
            });
            info.energy = Some(InfoAnswer::format_energy(&state.energy_wh));
            info.daily_reset = Some(daily_reset_text(state.daily_reset));
            info.calibration = Some(state.calibration.to_vec());
            info.ssids = Some(format!("[{}]", state.ssids.join(", ")));
            info
        };
        self.put_json(&info);
    }

    // -- sampling ----------------------------------------------------------

    fn start_session(
        &mut self,
        measures: Measures,
        rate: u32,
        prefix: bool,
        flow_ctr: bool,
    ) -> Result<StartTs, String> {
        let settings = &self.meter.settings;
        let generator = SignalGenerator::new(settings.signal.clone(), measures, rate)
            .map_err(|e| format!("SamplingRate could not be set to {rate}: {e}"))?;
        let now = Instant::now();
        let start_ts = StartTs::from_unix_millis(unix_millis());
        let session = Session {
            buffer: SampleBuffer::new(generator, settings.buffer_size),
            clock: SampleClock::new(now, rate),
            start_ts,
            chunk_bytes: chunk_size(rate, measures.bytes_per_sample(), Transport::Tcp),
            prefix,
            rts: !flow_ctr,
            requests: VecDeque::new(),
            packet: 0,
            sent_samples: 0,
            limit: settings.limit.map(|limit| limit.samples_at(rate)),
            next_report: now + settings.report_interval,
            taken_at_report: 0,
            report_at: now,
        };
        {
            let mut state = self.meter.state();
            state.busy = true;
            state.last_rate = rate;
        }
        self.session = Some(session);
        self.sessions += 1;
        Ok(start_ts)
    }

    fn end_session_bookkeeping(&mut self, session: &Session) {
        self.sent_samples += session.sent_samples;
        self.dropped_samples += session.buffer.dropped();
        self.meter.state().busy = false;
        self.next_lifeness = Instant::now() + self.settings().lifeness_interval;
    }

    /// `stop`: the samples due, all of the buffer as chunks and a shorter
    /// tail, then the stop answer; back to idle.
    fn stop_sampling(&mut self, now: Instant) {
        let pacing = self.settings().pacing;
        let Some(mut session) = self.session.take() else {
            return;
        };
        if pacing == Pacing::RealTime {
            session.take_due(pacing, now);
        }
        session.frame_tail(&mut self.out);
        let duration_ms = u64::try_from(
            now.saturating_duration_since(session.clock.start())
                .as_millis(),
        )
        .unwrap_or(u64::MAX);
        let stop_ts = StartTs::from_unix_millis(
            session
                .start_ts
                .to_unix_millis()
                .saturating_add(duration_ms),
        );
        let ip = self.meter.state().ip.clone();
        let answer = StopAnswer::new(
            session.start_ts,
            stop_ts,
            duration_ms,
            session.buffer.taken(),
            session.sent_samples,
            ip,
        );
        self.put_json(&answer);
        self.end_session_bookkeeping(&session);
    }

    /// The firmware's `checkBusy`: refuses while sampling.
    fn refuse_if_busy(&mut self, cmd: &str) -> bool {
        let (busy, ip) = {
            let state = self.meter.state();
            (state.busy || self.session.is_some(), state.ip.clone())
        };
        if busy {
            let mut answer = ErrorAnswer::new(
                Some(cmd),
                format!("Device with IP: {ip} currently sampling"),
            );
            answer.extra.insert("state".into(), Value::from("busy"));
            self.put_json(&answer);
        }
        busy
    }

    fn sample(&mut self, params: SampleParams) {
        if self.refuse_if_busy("sample") {
            return;
        }
        match params.stream_type {
            StreamType::Tcp => {}
            StreamType::Ffmpeg => {
                return self.error(Some("sample"), "Could not connect to TCP stream");
            }
            other => {
                return self.error(
                    Some("sample"),
                    format!("Unsupported sampling type: {other} (the virtual meter streams over TCP only)"),
                );
            }
        }
        if params.time.is_some() || params.slot.is_some() {
            return self.error(
                Some("sample"),
                "timed starts and slots are not supported by the virtual meter",
            );
        }
        let measures = params.measures.unwrap_or_default();
        let Some(rate) = params.rate else {
            return self.error(
                Some("sample"),
                "Not a valid \"sample\" command, \"rate\" missing",
            );
        };
        if let Err(e) = measures.validate_rate(rate) {
            return self.error(
                Some("sample"),
                format!("SamplingRate could not be set to {rate}: {e}"),
            );
        }
        let prefix = params.prefix.unwrap_or(true);
        let flow_ctr = params.flow_ctr.unwrap_or(false);
        match self.start_session(measures, rate, prefix, flow_ctr) {
            Ok(start_ts) => {
                let answer =
                    SampleAnswer::new(measures, rate, StreamType::Tcp, prefix, flow_ctr, start_ts);
                self.put_json(&answer);
            }
            Err(reason) => self.error(Some("sample"), reason),
        }
    }

    // -- commands ----------------------------------------------------------

    fn handle(&mut self, command: Result<Command, CommandError>, now: Instant) {
        let command = match command {
            Ok(command) => command,
            Err(error) => return self.refuse(error),
        };
        match command {
            Command::Ping => {
                // Backward compatible reset: sampling ends without a stop answer.
                if let Some(mut session) = self.session.take() {
                    session.buffer.clear();
                    self.end_session_bookkeeping(&session);
                }
                self.put_line(SETUP_DONE);
            }
            Command::KeepAlive => {}
            Command::Info => self.send_device_info(),
            Command::Sample(params) => self.sample(params),
            Command::Stop => {
                if self.session.is_some() {
                    self.stop_sampling(now);
                } else {
                    self.put_json(&json!({"error": true, "cmd": "stop"}));
                }
            }
            Command::Cts { value } => {
                if let Some(session) = self.session.as_mut() {
                    session.rts = value;
                }
                self.answer("cts", None, false, Map::new());
            }
            Command::ReqSamples { samples } => match self.session.as_mut() {
                Some(session) => session.requests.push_back(u64::from(samples)),
                None => self.put_json(&json!({"error": true, "cmd": "reqSamples"})),
            },
            Command::Log { level } => {
                self.log_level = level;
                self.ok("log", format!("Log Level set to: {level}"));
            }
            Command::Ntp { .. } => {
                // The firmware reports a successful sync with "error":true.
                let mut extra = Map::new();
                extra.insert("current_time".into(), Value::from(sys_time()));
                self.answer("ntp", Some("Time synced".into()), true, extra);
            }
            Command::Restart => self.closing = Some(ConnectionEnd::Restart),
            Command::FactoryReset | Command::BasicReset => {
                let keep_name = matches!(command, Command::BasicReset);
                self.reset_config(keep_name);
                self.closing = Some(ConnectionEnd::Restart);
            }
            other => {
                if self.refuse_if_busy(other.name()) {
                    return;
                }
                self.idle_command(other, now);
            }
        }
    }

    /// A line the parser refused, answered as the firmware does.
    fn refuse(&mut self, error: CommandError) {
        match error {
            CommandError::InvalidJson { excerpt, .. } => {
                let shown: String = excerpt
                    .chars()
                    .take(30)
                    .map(|c| {
                        if matches!(c, '\r' | '\n' | '"' | '{' | '}') {
                            '_'
                        } else {
                            c
                        }
                    })
                    .collect();
                self.log(
                    LogLevel::Error,
                    &format!("deserializeJson() failed: {shown}"),
                );
            }
            CommandError::LineTooLong { len, .. } => {
                self.log(
                    LogLevel::Error,
                    &format!("deserializeJson() failed: command of {len} bytes cut"),
                );
            }
            CommandError::Unknown(cmd) => {
                self.log(LogLevel::Warning, "Received unknown command");
                self.error(Some(&cmd), "unknown command");
            }
            CommandError::InvalidField { cmd, field, reason } => {
                if cmd.is_empty() {
                    self.error(
                        None,
                        "JSON format error, syntax: {\"cmd\":<cmdName>, \"[payload\":{<data>}]}}",
                    );
                } else {
                    self.error(Some(&cmd), format!("invalid {field}: {reason}"));
                }
            }
        }
    }

    fn reset_config(&mut self, keep_name: bool) {
        let fresh = MeterState::new(&self.meter.settings);
        let mut state = self.meter.state();
        let name = if keep_name {
            state.name.clone()
        } else {
            fresh.name.clone()
        };
        let ip = state.ip.clone();
        *state = MeterState { name, ip, ..fresh };
    }

    /// Commands the firmware only carries out while idle.
    fn idle_command(&mut self, command: Command, now: Instant) {
        let cmd = command.name();
        let signal = &self.meter.settings.signal;
        let t = {
            let state = self.meter.state();
            now.saturating_duration_since(state.boot).as_secs_f64()
        };
        let truth = signal.truth_at(t);
        let per_phase = |f: &dyn Fn(usize) -> f64| -> Value {
            Value::from((0..3).map(|k| round4(f(k))).collect::<Vec<f64>>())
        };
        let mut extra = Map::new();
        let mut msg = None;
        let mut error = false;
        match command {
            Command::GetPower => {
                extra.insert("activePower".into(), per_phase(&|k| truth.phases[k].p_w));
                extra.insert(
                    "reactivePower".into(),
                    per_phase(&|k| truth.phases[k].q_budeanu_var),
                );
                extra.insert("apparentPower".into(), per_phase(&|k| truth.phases[k].s_va));
                extra.insert("unit".into(), Value::from("W/var/VA"));
            }
            Command::GetVoltage => {
                extra.insert("voltage".into(), per_phase(&|k| truth.phases[k].v_rms_v));
                extra.insert("unit".into(), Value::from("V"));
            }
            Command::GetCurrent => {
                extra.insert(
                    "current".into(),
                    per_phase(&|k| truth.phases[k].i_rms_a * 1000.0),
                );
                extra.insert("unit".into(), Value::from("mA"));
            }
            Command::GetPeriod => {
                extra.insert("period".into(), per_phase(&|_| truth.frequency_hz));
                extra.insert("unit".into(), Value::from("Hz"));
            }
            Command::GetPhaseAngle => {
                extra.insert("phase".into(), per_phase(&|k| truth.phases[k].angle_deg));
                extra.insert("unit".into(), Value::from("Deg"));
            }
            Command::GetEnergy => {
                let mut state = self.meter.state();
                state.update_energy(signal, now);
                let energy = state.energy_wh;
                let reset = state.energy_reset_secs;
                drop(state);
                extra.insert("energy".into(), per_phase(&|k| energy[k]));
                extra.insert("unit".into(), Value::from("Wh"));
                extra.insert("startTs".into(), Value::from(reset));
                extra.insert("start".into(), Value::from(time_text(reset * 1000)));
                let days = (unix_millis() / 1000).saturating_sub(reset) / 86_400;
                extra.insert("days".into(), Value::from(days));
            }
            Command::Mdns { name } => {
                if name.len() > MAX_NAME_LEN {
                    error = true;
                    msg = Some(format!(
                        "MDNS name too long, only string of size {} allowed",
                        MAX_NAME_LEN + 1
                    ));
                } else {
                    self.meter.state().name = name.clone();
                    self.log(LogLevel::Info, &format!("MDNS Name: {name}"));
                    msg = Some(format!("Set MDNS name to: {name}"));
                    extra.insert("mdns_name".into(), Value::from(name));
                }
            }
            Command::MqttServer { server } => {
                self.meter.state().mqtt_server = server.clone();
                msg = Some(format!("Set MQTTServer address to: {server}"));
                extra.insert("mqtt_server".into(), Value::from(server));
            }
            Command::StreamServer { server } => {
                self.meter.state().stream_server = server.clone();
                msg = Some(format!("Set StreamServer address to: {server}"));
                extra.insert("stream_server".into(), Value::from(server));
            }
            Command::TimeServer { server } => {
                self.meter.state().time_server = server.clone();
                msg = Some(format!("Set TimeServer address to: {server}"));
                extra.insert("time_server".into(), Value::from(server));
            }
            Command::AddWifi { ssid, pwd } => {
                let mut state = self.meter.state();
                if state.ssids.contains(&ssid) {
                    msg = Some(format!("Wifi AP {ssid} already in list"));
                } else if state.ssids.len() >= 4 {
                    msg = Some("MAX # APs reached, need to delete first".into());
                } else {
                    state.ssids.push(ssid.clone());
                    msg = Some(format!("New Ap, SSID: {ssid}, PW: {pwd}"));
                    extra.insert("ssid".into(), Value::from(ssid));
                    extra.insert("pwd".into(), Value::from(pwd));
                }
                extra.insert("ssids".into(), Value::from(ssid_list_text(&state.ssids)));
                // The firmware answers every addWifi with "error":true.
                error = true;
            }
            Command::DelWifi { ssid } => {
                let mut state = self.meter.state();
                let before = state.ssids.len();
                state.ssids.retain(|s| s != &ssid);
                error = state.ssids.len() == before;
                msg = Some(if error {
                    format!("SSID {ssid} not found")
                } else {
                    format!("Removed SSID: {ssid}")
                });
                extra.insert("ssids".into(), Value::from(ssid_list_text(&state.ssids)));
            }
            Command::Calibration { cal } => {
                self.meter.state().calibration = cal;
                msg = Some(format!(
                    "Calibration set: v1:{:.2}, i1:{:.2}, v2:{:.2}, i2:{:.2}, v3:{:.2}, i3:{:.2}",
                    cal[0], cal[1], cal[2], cal[3], cal[4], cal[5]
                ));
            }
            Command::DailyRestart { hour, minute } => {
                self.meter.state().daily_reset = (hour, minute);
                msg = Some(if hour < 0 {
                    "Disabled daily restart".to_string()
                } else {
                    format!("Set daily restart to: {hour:02}:{minute:02}:00")
                });
            }
            Command::ResetEnergy { energy, ts } => {
                let values = energy.unwrap_or([0.0; 3]);
                let secs = ts.map_or(unix_millis() / 1000, u64::from);
                let mut state = self.meter.state();
                state.energy_wh = values;
                state.energy_reset_secs = secs;
                state.energy_updated = now;
                msg = Some(format!(
                    "Energy reset to [{:.2}, {:.2}, {:.2}], @{}",
                    values[0],
                    values[1],
                    values[2],
                    time_text(secs * 1000)
                ));
            }
            Command::ClearLog => self.meter.state().stored_log.clear(),
            Command::GetLog => {
                let rows: Vec<String> = self.meter.state().stored_log.iter().cloned().collect();
                let mut text = String::from("*** LOGFile *** //n");
                for row in rows {
                    text.push_str(&row);
                    text.push_str("//n");
                }
                text.push_str("*** LOGFile *** ");
                self.put_json(&json!({"cmd": "log", "msg": text}));
            }
            Command::Ade9k { address, write, .. } => {
                let reg = u32::from_str_radix(address.trim_start_matches("0x"), 16).unwrap_or(0);
                let mut text = format!("Addr: 0x{reg:04x}, Read: 0x0000");
                if let Some(value) = write {
                    let value =
                        u32::from_str_radix(value.trim_start_matches("0x"), 16).unwrap_or(0);
                    text.push_str(&format!(", Write: 0x{value:04x}, Re-Read: 0x0000"));
                    extra.insert("newRegValue".into(), Value::from(0));
                }
                extra.insert("regValue".into(), Value::from(0));
                msg = Some(text);
            }
            // Handled in `handle` before the busy check.
            Command::Info
            | Command::Sample(_)
            | Command::Stop
            | Command::Cts { .. }
            | Command::ReqSamples { .. }
            | Command::Log { .. }
            | Command::Ntp { .. }
            | Command::Restart
            | Command::FactoryReset
            | Command::BasicReset
            | Command::Ping
            | Command::KeepAlive => return,
        }
        self.answer(cmd, msg, error, extra);
    }
}

/// `t + period`, or `now + period` when `t` fell behind (no bursts of catch-up lines).
fn later(t: Instant, period: Duration, now: Instant) -> Instant {
    let next = t + period;
    if next <= now {
        now + period
    } else {
        next
    }
}

/// A broken or reset connection, as opposed to a local I/O failure.
/// Bytes a write took; None when the peer is gone.
fn written(result: io::Result<usize>) -> io::Result<Option<usize>> {
    match result {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(e) if is_disconnect(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes what it can of the front of `out` in one vectored write.
async fn write_front<W: AsyncWrite + Unpin>(write: &mut W, out: &OutQueue) -> io::Result<usize> {
    let mut slices = [IoSlice::new(&[]); MAX_WRITE_PARTS];
    let filled = out.io_slices(&mut slices);
    write.write_vectored(&slices[..filled]).await
}

fn is_disconnect(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::NotConnected
    )
}

fn round4(value: f64) -> f64 {
    (value * 1e4).round() / 1e4
}

fn sys_time() -> String {
    chrono::Local::now()
        .format("%m/%d/%Y %H:%M:%S%.3f")
        .to_string()
}

/// `MM/DD/YYYY HH:MM:SS.mmm` of a Unix time in ms (local time).
fn time_text(unix_ms: u64) -> String {
    let ms = i64::try_from(unix_ms).unwrap_or(i64::MAX);
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t
            .with_timezone(&chrono::Local)
            .format("%m/%d/%Y %H:%M:%S%.3f")
            .to_string(),
        None => "-".to_string(),
    }
}

fn daily_reset_text((hour, minute): (i8, i8)) -> String {
    if hour < 0 {
        "None".to_string()
    } else {
        format!("@{hour:02}:{minute:02}:00")
    }
}

/// The firmware's `addWifi`/`delWifi` list: every name followed by `", "`.
fn ssid_list_text(ssids: &[String]) -> String {
    let mut text = String::from("[");
    for ssid in ssids {
        text.push_str(ssid);
        text.push_str(", ");
    }
    text.push(']');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_in_samples() {
        assert_eq!(SessionLimit::Samples(7).samples_at(8000), 7);
        assert_eq!(
            SessionLimit::Duration(Duration::from_millis(250)).samples_at(8000),
            2000
        );
    }

    #[test]
    fn refuses_bad_settings() {
        let mut settings = MeterSettings::new("m");
        settings.raw_rate = 7000;
        assert!(matches!(
            VirtualMeter::new(settings),
            Err(MeterError::Raw { .. })
        ));
        let mut settings = MeterSettings::new("m");
        settings.signal.frequency_hz = 0.0;
        assert!(matches!(
            VirtualMeter::new(settings),
            Err(MeterError::Signal { .. })
        ));
    }
}
