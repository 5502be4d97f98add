//! Every numeric pipeline key and every numeric CLI flag at its limits (0,
//! -0, subnormal, huge, infinite, NaN, negative): refused with a clear error
//! that names the key or flag and prints numbers compactly, never a panic
//! (exit 101) or an abort (134); and the ends of each documented range are
//! still accepted. Keys are read from `docs/pipeline.md` and flags from the
//! binary's `--help`, so a new key or flag is covered once it exists.

use crate::common;

use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::pipeline_doc::{kinds, kinds_for, load, Doc};

const DOC: &str = include_str!("../../docs/pipeline.md");

/// Float values at the edges of what a float key can be given.
const HOSTILE_FLOATS: [&str; 16] = [
    "nan",
    "+nan",
    "-nan",
    "inf",
    "-inf",
    "0.0",
    "-0.0",
    "5e-324",
    "2.2250738585072014e-308",
    "1e-300",
    "-1.0",
    "1e300",
    "-1e300",
    "1.7976931348623157e308",
    "-1.7976931348623157e308",
    "1e-9",
];

/// Integer values at the edges of what TOML and the key types hold.
const HOSTILE_INTEGERS: [&str; 10] = [
    "0",
    "-0",
    "-1",
    "1",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551615",
    "340282366920938463463374607431768211456",
];

/// One documented key: its table, source kind, name, type and meaning.
#[derive(Debug, Clone)]
struct DocumentedKey {
    header: String,
    kind: Option<String>,
    name: String,
    ty: String,
    meaning: String,
}

impl DocumentedKey {
    fn label(&self) -> String {
        match &self.kind {
            Some(kind) => format!("{} (kind {kind}) {}", self.header, self.name),
            None => format!("{} {}", self.header, self.name),
        }
    }
}

/// The rows of `docs/pipeline.md` under each `## ` heading.
fn documented_keys() -> Vec<DocumentedKey> {
    let mut keys = Vec::new();
    let mut tables: Vec<(String, Option<String>)> = Vec::new();
    for line in DOC.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            tables.clear();
            let Some(tail) = heading.trim().strip_prefix('`') else {
                // `(top level)`: keys outside every table (no numbers).
                continue;
            };
            let Some((header, rest)) = tail.split_once('`') else {
                continue;
            };
            let kinds = kinds(rest);
            if kinds.is_empty() {
                tables.push((header.to_string(), None));
            } else {
                tables.extend(kinds.into_iter().map(|k| (header.to_string(), Some(k))));
            }
        } else if let Some(row) = line.strip_prefix("| `") {
            let cells: Vec<&str> = row.split(" | ").collect();
            if cells.len() < 4 {
                continue;
            }
            for (header, kind) in &tables {
                keys.push(DocumentedKey {
                    header: header.clone(),
                    kind: kind.clone(),
                    name: cells[0].trim_end_matches('`').to_string(),
                    ty: cells[1].trim().to_string(),
                    meaning: cells[3].trim_end_matches(" |").to_string(),
                });
            }
        }
    }
    keys
}

/// A range as the doc writes it after `Range`: `1 ..= 1000 Hz`,
/// `0.1 s ..= 1 day`, `1 KiB ..= 1 TiB`, `0 V or more`, in the key's own
/// unit (milliseconds for `_ms` keys, seconds for other durations).
#[derive(Debug, Clone, Copy, PartialEq)]
struct DocumentedRange {
    min: f64,
    max: Option<f64>,
}

fn documented_range(key: &DocumentedKey) -> Option<DocumentedRange> {
    let (_, after) = key.meaning.split_once("Range ")?;
    let end = [", ", ". ", " |"]
        .iter()
        .filter_map(|stop| after.find(stop))
        .min()
        .unwrap_or(after.len());
    let text = after[..end].trim_end_matches('.');
    let per_second = if key.name.ends_with("_ms") {
        1000.0
    } else {
        1.0
    };
    if let Some(min) = text.strip_suffix(" or more") {
        let min = quantity(min, None)?;
        return Some(DocumentedRange {
            min: min * per_second,
            max: None,
        });
    }
    let (low, high) = text.split_once(" ..= ")?;
    let high_unit = high.split_once(' ').map(|(_, unit)| unit);
    let max = quantity(high, None)?;
    let min = quantity(low, high_unit)?;
    Some(DocumentedRange {
        min: min * per_second,
        max: Some(max * per_second),
    })
}

/// `5 s`, `1 day`, `16 GiB`, `1000 Hz`, `7` in seconds, bytes or as is;
/// `unit` is taken when the text has none (`1 ..= 1000 Hz`).
fn quantity(text: &str, unit: Option<&str>) -> Option<f64> {
    let mut parts = text.split_whitespace();
    let number: f64 = parts.next()?.parse().ok()?;
    let unit = parts.next().or(unit).unwrap_or("");
    let scale = match unit {
        "ms" => 1e-3,
        "min" => 60.0,
        "h" => 3600.0,
        "day" | "days" => 86_400.0,
        "year" | "years" => 365.0 * 86_400.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => 1.0,
    };
    Some(number * scale)
}

/// The longest run of digits in `text`: a value printed in full (`1e300`
/// as 301 digits) is unreadable.
fn longest_digit_run(text: &str) -> usize {
    text.split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0)
}

/// What went wrong with `key = value`, if anything: a panic, an error not
/// naming the key or printing a number in full, a value outside the
/// documented range accepted, a non-finite float accepted.
fn check_value(key: &DocumentedKey, kind: &str, value: &str, wrong: &mut Vec<String>) {
    let doc = Doc::of(kind).with(&key.header, &key.name, value);
    let case = format!("{} = {value}", key.label());
    let outcome = match catch_unwind(AssertUnwindSafe(|| load(&doc))) {
        Err(_) => {
            wrong.push(format!("{case}: panicked"));
            return;
        }
        Ok(outcome) => outcome,
    };
    let parsed: Option<f64> = value.parse().ok();
    let outside = match (documented_range(key), parsed) {
        (Some(range), Some(v)) => {
            v.is_nan() || v < range.min || range.max.is_some_and(|max| v > max)
        }
        (Some(_), None) => true,
        (None, _) => false,
    };
    let non_finite = key.ty == "float" && parsed.is_some_and(|v| !v.is_finite());
    match outcome {
        Err(error) => {
            let message = format!("{error:#}");
            if !message.contains(&key.name) {
                wrong.push(format!("{case}: {message:?} does not name the key"));
            }
            // The longest literal a test writes is 39 digits (2^128).
            if longest_digit_run(&message) > 40 {
                wrong.push(format!("{case}: {message:?} prints a number in full"));
            }
        }
        Ok(_) if outside => wrong.push(format!(
            "{case}: accepted, outside its documented range {:?}",
            documented_range(key)
        )),
        Ok(_) if non_finite => wrong.push(format!("{case}: a non-finite value is accepted")),
        Ok(_) => {}
    }
}

/// A float as TOML takes it (`1.0`, `1e-9`).
fn toml_float(value: f64) -> String {
    format!("{value:?}")
}

/// Every numeric key of every documented section at hostile values, and
/// just outside its documented range: refused with the key named (or, for
/// a value the key may take, accepted), never a panic.
#[test]
fn every_documented_numeric_key_refuses_hostile_values() {
    let keys = documented_keys();
    assert!(
        keys.len() > 150,
        "only {} keys read from the doc",
        keys.len()
    );
    let mut checked = 0;
    let mut ranged = 0;
    let mut wrong = Vec::new();
    for key in &keys {
        let hostile: &[&str] = match key.ty.as_str() {
            "float" => &HOSTILE_FLOATS,
            "integer" => &HOSTILE_INTEGERS,
            _ => continue,
        };
        let mut values: Vec<String> = hostile.iter().map(|v| v.to_string()).collect();
        if let Some(range) = documented_range(key) {
            ranged += 1;
            let step = |v: f64| (v.abs() * 1e-6).max(if key.ty == "integer" { 1.0 } else { 1e-9 });
            let below = range.min - step(range.min);
            let above = range.max.map(|max| max + step(max));
            for v in [Some(below), above].into_iter().flatten() {
                values.push(if key.ty == "integer" {
                    format!("{v:.0}")
                } else {
                    toml_float(v)
                });
            }
        }
        for kind in kinds_for(&key.header, key.kind.as_deref()) {
            for value in &values {
                checked += 1;
                check_value(key, kind, value, &mut wrong);
            }
        }
    }
    assert!(ranged > 40, "only {ranged} keys have a documented range");
    assert!(checked > 1500, "only {checked} cases");
    assert!(
        wrong.is_empty(),
        "{}\n{} wrong",
        wrong.join("\n"),
        wrong.len()
    );
}

/// Both ends of every documented range are accepted (where the doc names
/// no other key the value must not pass).
#[test]
fn the_ends_of_every_documented_range_are_accepted() {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for key in documented_keys() {
        let Some(range) = documented_range(&key) else {
            continue;
        };
        let mut ends = Vec::new();
        if !key.meaning.contains("not below") {
            ends.push(range.min);
        }
        if !key.meaning.contains("not above") {
            ends.extend(range.max);
        }
        for end in ends {
            let value = if key.ty == "integer" {
                format!("{end:.0}")
            } else {
                toml_float(end)
            };
            for kind in kinds_for(&key.header, key.kind.as_deref()) {
                checked += 1;
                let doc = Doc::of(kind).with(&key.header, &key.name, &value);
                match catch_unwind(AssertUnwindSafe(|| load(&doc))) {
                    Err(_) => wrong.push(format!("{} = {value}: panicked", key.label())),
                    Ok(Err(error)) => {
                        wrong.push(format!("{} = {value}: refused: {error:#}", key.label()))
                    }
                    Ok(Ok(_)) => {}
                }
            }
        }
    }
    assert!(checked > 80, "only {checked} cases");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn documented_ranges_read_in_the_keys_units() {
    let key = |name: &str, meaning: &str| DocumentedKey {
        header: "[x]".into(),
        kind: None,
        name: name.into(),
        ty: "integer".into(),
        meaning: meaning.into(),
    };
    let range = |min: f64, max: Option<f64>| Some(DocumentedRange { min, max });
    assert_eq!(
        documented_range(&key(
            "timeout_ms",
            "Whole-request timeout. Range 1 ms ..= 1 h."
        )),
        range(1.0, Some(3_600_000.0))
    );
    assert_eq!(
        documented_range(&key("a_s", "Seconds. Range 0.1 s ..= 1 day.")),
        range(0.1, Some(86_400.0))
    );
    assert_eq!(
        documented_range(&key("rate", "Hz. Range 1 ..= 1000000 Hz.")),
        range(1.0, Some(1e6))
    );
    assert_eq!(
        documented_range(&key("b", "Range 1 KiB ..= 16 GiB, not above `max_bytes`.")),
        range(1024.0, Some(16.0 * 1024.0 * 1024.0 * 1024.0))
    );
    assert_eq!(
        documented_range(&key("v", "Peak. Range 0 V or more.")),
        range(0.0, None)
    );
    assert_eq!(documented_range(&key("n", "No range here.")), None);
    assert_eq!(longest_digit_run("a 1e300 b 12345 c"), 5);
}

// ---- Command-line flags -------------------------------------------------

/// Flags whose value is not a number (paths, addresses, names, layouts).
const NON_NUMERIC_FLAGS: [&str; 23] = [
    "--out",
    "--pipeline",
    "--measures",
    "--start",
    "--name",
    "--dir",
    "--listen",
    "--metrics-listen",
    "--state-dir",
    "--nats",
    "--device",
    "--from",
    "--to",
    "--tz",
    "--png-dir",
    "--mode",
    "--server",
    "--bind",
    "--name-prefix",
    "--signal",
    "--capture",
    "--raw-measures",
    "--layout",
];

/// Values no numeric flag may take unless its row says so: not a number,
/// infinite, negative, far too large, beyond every integer type, empty.
const HOSTILE_FLAG_VALUES: [&str; 15] = [
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e400",
    "-1",
    "-1e300",
    "1e300",
    "1.7976931348623157e308",
    "18446744073709551616",
    "0",
    "-0",
    "5e-324",
    "",
    "x",
];

/// One numeric flag: the command words, the flag, the hostile values it
/// may take (a seed may be 0), and in-range values that must still run.
struct Flag {
    command: &'static [&'static str],
    flag: &'static str,
    takes: &'static [&'static str],
    accepted: &'static [&'static str],
}

/// The hostile values that are finite and not negative: a signal level
/// may take them (0 V is a dead line; the signal has no upper limit).
const NON_NEGATIVE_FINITE: [&str; 6] = [
    "0",
    "-0",
    "5e-324",
    "1e300",
    "1.7976931348623157e308",
    "18446744073709551616",
];

const FLAGS: &[Flag] = &[
    Flag {
        command: &["batch"],
        flag: "--rate",
        takes: &[],
        accepted: &["1", "8000", "1000000"],
    },
    Flag {
        command: &["inspect"],
        flag: "--nominal-hz",
        takes: &[],
        accepted: &["1", "60", "1000"],
    },
    Flag {
        command: &["inspect"],
        flag: "--udin",
        takes: &[],
        accepted: &["1", "120", "1000000"],
    },
    Flag {
        command: &["report"],
        flag: "--detail",
        takes: &["0"],
        accepted: &["0", "18446744073709551615"],
    },
    Flag {
        command: &["run"],
        flag: "--seconds",
        takes: &[],
        accepted: &["0.001"],
    },
    Flag {
        command: &["bench", "batch"],
        flag: "--minutes",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["bench", "batch"],
        flag: "--rate",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["bench", "sink"],
        flag: "--meters",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["bench", "sink"],
        flag: "--rate",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["bench", "sink"],
        flag: "--seconds",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["bench", "sink"],
        flag: "--connect-timeout",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["bench", "sink"],
        flag: "--workers",
        takes: &["0", "-0"],
        accepted: &[],
    },
    Flag {
        command: &["bench", "sink"],
        flag: "--file-span-s",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["bench", "sink"],
        flag: "--rss-every-s",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["bench", "sink"],
        flag: "--meter-send-interval-ms",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["bench", "cluster"],
        flag: "--meter-send-interval-ms",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["simulate"],
        flag: "--send-interval-ms",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["bench", "cluster"],
        flag: "--ingest",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["bench", "cluster"],
        flag: "--writers",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["bench", "cluster"],
        flag: "--meters",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["bench", "cluster"],
        flag: "--rate",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["bench", "cluster"],
        flag: "--seconds",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["bench", "cluster"],
        flag: "--connect-timeout",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["bench", "cluster"],
        flag: "--file-span-s",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["bench", "cluster"],
        flag: "--partitions",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["cluster"],
        flag: "--ingest",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["cluster"],
        flag: "--writers",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["writer"],
        flag: "--index",
        takes: &["0", "-0"],
        accepted: &[],
    },
    Flag {
        command: &["writer"],
        flag: "--of",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["simulate"],
        flag: "--reconnect-secs",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["simulate"],
        flag: "--port",
        // 0: free ports are picked.
        takes: &["0", "-0"],
        accepted: &[],
    },
    Flag {
        command: &["simulate"],
        flag: "--meters",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["simulate"],
        flag: "--first-number",
        takes: &["0", "-0"],
        accepted: &[],
    },
    Flag {
        command: &["simulate"],
        flag: "--seed",
        takes: &["0", "-0"],
        accepted: &[],
    },
    Flag {
        command: &["simulate"],
        flag: "--voltage",
        takes: &NON_NEGATIVE_FINITE,
        accepted: &[],
    },
    Flag {
        command: &["simulate"],
        flag: "--frequency",
        takes: &[
            "5e-324",
            "1e300",
            "1.7976931348623157e308",
            "18446744073709551616",
        ],
        accepted: &[],
    },
    Flag {
        command: &["simulate"],
        flag: "--current",
        takes: &NON_NEGATIVE_FINITE,
        accepted: &[],
    },
    Flag {
        command: &["simulate"],
        flag: "--angle",
        // Any finite angle is an angle.
        takes: &[
            "0",
            "-0",
            "5e-324",
            "-1",
            "1e300",
            "-1e300",
            "1.7976931348623157e308",
            "18446744073709551616",
        ],
        accepted: &[],
    },
    Flag {
        command: &["simulate"],
        flag: "--duration",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["simulate"],
        flag: "--samples",
        takes: &["0", "-0"],
        accepted: &[],
    },
    Flag {
        command: &["simulate"],
        flag: "--buffer-size",
        takes: &[],
        accepted: &[],
    },
    Flag {
        command: &["simulate"],
        flag: "--raw-rate",
        takes: &[],
        accepted: &[],
    },
];

/// The longest a refusal may take before the process counts as hung (a
/// refused flag stops the process before it does any work).
const HANG: Duration = Duration::from_secs(120);

/// Runs meterflow with `args` in `dir`; `None` when it was still running
/// after [`HANG`] (then it is killed).
fn meterflow(args: &[String], dir: &Path) -> Option<Output> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meterflow"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting meterflow");
    let started = Instant::now();
    loop {
        match child.try_wait().expect("waiting for meterflow") {
            Some(status) => {
                let mut stdout = Vec::new();
                let mut stderr = Vec::new();
                if let Some(mut out) = child.stdout.take() {
                    out.read_to_end(&mut stdout).expect("reading stdout");
                }
                if let Some(mut err) = child.stderr.take() {
                    err.read_to_end(&mut stderr).expect("reading stderr");
                }
                return Some(Output {
                    status,
                    stdout,
                    stderr,
                });
            }
            None if started.elapsed() > HANG => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The subcommand paths and each one's flags that take a value, from
/// `--help` (`bench` has subcommands of its own).
fn flags_from_help(dir: &Path) -> Vec<(Vec<String>, String)> {
    let help = |words: &[String]| -> String {
        let mut args = words.to_vec();
        args.push("--help".into());
        let output = meterflow(&args, dir).expect("--help returns");
        assert!(output.status.success(), "{args:?} --help failed");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let commands = |text: &str| -> Vec<String> {
        text.lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|c| *c != "help")
            .map(str::to_string)
            .collect()
    };
    let mut found = Vec::new();
    let mut pending: Vec<Vec<String>> = commands(&help(&[])).into_iter().map(|c| vec![c]).collect();
    while let Some(words) = pending.pop() {
        let text = help(&words);
        let subcommands = commands(&text);
        if !subcommands.is_empty() {
            for sub in subcommands {
                let mut deeper = words.clone();
                deeper.push(sub);
                pending.push(deeper);
            }
            continue;
        }
        for line in text.lines() {
            let line = line.trim_start();
            if !line.starts_with('-') {
                continue;
            }
            let Some(long) = line.split([',', ' ']).find(|part| part.starts_with("--")) else {
                continue;
            };
            if line.contains(&format!("{long} <")) {
                found.push((words.clone(), long.to_string()));
            }
        }
    }
    found
}

/// What the command needs besides the flag under test, so that an
/// accepted value does real work and a refused one is refused first.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        // One second of 230 V / 10 A at 8 kHz, v,i as f32le.
        let mut bytes = Vec::new();
        for n in 0..8000 {
            let phase = 2.0 * std::f64::consts::PI * 50.0 * f64::from(n) / 8000.0;
            let v = (230.0 * std::f64::consts::SQRT_2 * phase.sin()) as f32;
            let i = (10.0 * std::f64::consts::SQRT_2 * phase.sin()) as f32;
            bytes.extend_from_slice(&v.to_le_bytes());
            bytes.extend_from_slice(&i.to_le_bytes());
        }
        std::fs::write(dir.path().join("one_second.f32"), bytes).unwrap();
        let fixture = Fixture { dir };
        let dataset = [
            "batch".to_string(),
            capture(),
            "--out".into(),
            fixture.path("dataset"),
            "--quiet".into(),
        ];
        let made = meterflow(&dataset, fixture.dir.path()).expect("the report's dataset is made");
        assert!(made.status.success(), "{}", text(&made.stderr));
        fixture
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// The arguments that go with `command` (before the flag under test).
    fn args(&self, command: &[&str]) -> Vec<String> {
        let pipelines = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
        let mut args: Vec<String> = command.iter().map(|w| w.to_string()).collect();
        let extra: Vec<String> = match command {
            ["batch"] => vec![
                self.path("one_second.f32"),
                "--measures".into(),
                "v,i".into(),
                "--start".into(),
                "1700000000".into(),
                "--name".into(),
                "f".into(),
                "--out".into(),
                self.path("batch-out"),
                "--quiet".into(),
            ],
            ["inspect"] => vec![capture()],
            ["report"] => vec![
                self.path("dataset"),
                "--out".into(),
                self.path("report/r.html"),
            ],
            ["run"] => vec!["--fast".into(), "--out".into(), self.path("run-out")],
            ["bench", _] => vec!["--dir".into(), self.path("bench")],
            ["writer"] => vec![
                "--pipeline".into(),
                pipelines.join("cluster.toml").display().to_string(),
                "--out".into(),
                self.path("writer-out"),
            ],
            ["simulate"] => vec!["--server".into(), "127.0.0.1:9".into()],
            _ => Vec::new(),
        };
        args.extend(extra);
        args
    }
}

/// A capture of the repository's test data (three phases, 8 kHz).
fn capture() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/three_phase_8khz.mfcap")
        .display()
        .to_string()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every numeric flag of every subcommand (from `--help`) at hostile
/// values: the real binary exits 1 with an error naming the flag and no
/// number printed in full, never 101 (panic), 134 (abort) or a hang; the
/// in-range values of the cheap commands still run to exit 0.
#[test]
fn every_numeric_flag_refuses_hostile_values() {
    let fixture = Fixture::new();
    let mut wrong = Vec::new();
    let documented = flags_from_help(fixture.dir.path());
    assert!(documented.len() > 40, "only {} flags", documented.len());
    for (words, flag) in &documented {
        let listed = FLAGS
            .iter()
            .any(|f| f.flag == flag && f.command.iter().eq(words.iter()));
        if !listed && !NON_NUMERIC_FLAGS.contains(&flag.as_str()) {
            wrong.push(format!(
                "{} {flag}: neither in FLAGS nor in NON_NUMERIC_FLAGS",
                words.join(" ")
            ));
        }
    }
    for entry in FLAGS {
        let command = entry.command.join(" ");
        if !documented
            .iter()
            .any(|(w, f)| f == entry.flag && w.iter().eq(entry.command.iter()))
        {
            wrong.push(format!("{command} {}: not in --help", entry.flag));
        }
        for value in HOSTILE_FLAG_VALUES {
            if entry.takes.contains(&value) {
                continue;
            }
            let mut args = fixture.args(entry.command);
            args.push(format!("{}={value}", entry.flag));
            let case = format!("{command} {}={value}", entry.flag);
            let Some(output) = meterflow(&args, fixture.dir.path()) else {
                wrong.push(format!("{case}: still running after {HANG:?}"));
                continue;
            };
            let stderr = text(&output.stderr);
            match output.status.code() {
                Some(0) => wrong.push(format!("{case}: accepted")),
                Some(1) | Some(2) => {
                    if !stderr.contains(entry.flag) {
                        wrong.push(format!("{case}: {stderr:?} does not name the flag"));
                    }
                    if longest_digit_run(&stderr) > 25 {
                        wrong.push(format!("{case}: {stderr:?} prints a number in full"));
                    }
                }
                code => wrong.push(format!("{case}: exit {code:?}: {stderr}")),
            }
        }
        for value in entry.accepted {
            let mut args = fixture.args(entry.command);
            args.push(format!("{}={value}", entry.flag));
            let case = format!("{command} {}={value}", entry.flag);
            match meterflow(&args, fixture.dir.path()) {
                None => wrong.push(format!("{case}: still running after {HANG:?}")),
                Some(output) if !output.status.success() => {
                    wrong.push(format!("{case}: refused: {}", text(&output.stderr)))
                }
                Some(_) => {}
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{}\n{} wrong",
        wrong.join("\n"),
        wrong.len()
    );
}
