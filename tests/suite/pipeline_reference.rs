//! `docs/pipeline.md` against the config types: every section and key the
//! code accepts has a row, every row is a key the code accepts, and each
//! plain default in the doc is the code's default. The code side comes from
//! the types' JSON schema (`meterflow::pipeline::reference`), so a new field
//! fails this test until the doc has it.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};

use common::pipeline_doc::kinds;
use meterflow::pipeline::reference::{sections, Section, TOP_LEVEL};

const DOC: &str = include_str!("../../docs/pipeline.md");

/// (TOML header, source kind) → key → default cell.
type Tables = BTreeMap<(String, Option<String>), BTreeMap<String, String>>;

fn code_tables() -> Tables {
    sections()
        .into_iter()
        .map(|Section { header, kind, keys }| {
            let keys = keys.into_iter().map(|k| (k.name, k.default)).collect();
            ((header, kind), keys)
        })
        .collect()
}

/// Sections of the doc: every `## ` heading is one, with its rows.
fn doc_tables(doc: &str) -> Result<Tables, Vec<String>> {
    let mut tables = Tables::new();
    let mut problems = Vec::new();
    let mut current: Vec<(String, Option<String>)> = Vec::new();
    for (n, line) in doc.lines().enumerate() {
        let line_no = n + 1;
        if let Some(heading) = line.strip_prefix("## ") {
            let heading = heading.trim();
            let (header, rest) = if heading == TOP_LEVEL {
                (TOP_LEVEL.to_string(), "")
            } else if let Some(tail) = heading.strip_prefix('`') {
                match tail.split_once('`') {
                    Some((header, rest)) if header.starts_with('[') => (header.to_string(), rest),
                    _ => {
                        problems.push(format!(
                            "line {line_no}: heading {heading:?} is no TOML header"
                        ));
                        continue;
                    }
                }
            } else {
                problems.push(format!("line {line_no}: heading {heading:?} is no section"));
                continue;
            };
            let kinds = kinds(rest);
            current = if kinds.is_empty() {
                vec![(header, None)]
            } else {
                kinds
                    .into_iter()
                    .map(|k| (header.clone(), Some(k)))
                    .collect()
            };
            for section in &current {
                if tables.insert(section.clone(), BTreeMap::new()).is_some() {
                    problems.push(format!("line {line_no}: section {section:?} appears twice"));
                }
            }
        } else if let Some(row) = line.strip_prefix("| `") {
            let cells: Vec<&str> = row.split(" | ").collect();
            let key = cells[0].trim_end_matches('`').to_string();
            let default = cells.get(2).map_or("", |c| c.trim()).to_string();
            if current.is_empty() {
                problems.push(format!("line {line_no}: row {key:?} before any section"));
            }
            for section in &current {
                let keys = tables.entry(section.clone()).or_default();
                if keys.insert(key.clone(), default.clone()).is_some() {
                    problems.push(format!("line {line_no}: {key:?} twice in {section:?}"));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(tables)
    } else {
        Err(problems)
    }
}

/// Every way the doc and the code disagree.
fn differences(doc: &str) -> Vec<String> {
    let doc = match doc_tables(doc) {
        Ok(doc) => doc,
        Err(problems) => return problems,
    };
    let code = code_tables();
    let mut out = Vec::new();
    for (section, keys) in &code {
        let Some(documented) = doc.get(section) else {
            out.push(format!("section {section:?} is not in docs/pipeline.md"));
            continue;
        };
        for (key, default) in keys {
            match documented.get(key) {
                None => out.push(format!("{section:?}: key {key:?} is not in the doc")),
                Some(doc_default) if !default.is_empty() && doc_default != default => out.push(
                    format!("{section:?}: {key:?} default is {default} in the code, {doc_default} in the doc"),
                ),
                Some(_) => {}
            }
        }
    }
    for (section, keys) in &doc {
        let Some(accepted) = code.get(section) else {
            out.push(format!(
                "the doc's section {section:?} is not one the code reads"
            ));
            continue;
        };
        let accepted: BTreeSet<&String> = accepted.keys().collect();
        for key in keys.keys() {
            if !accepted.contains(key) {
                out.push(format!(
                    "the doc's {section:?} names {key:?}, which the code refuses"
                ));
            }
        }
    }
    out
}

#[test]
fn the_doc_has_every_section_and_key_and_no_other() {
    let differences = differences(DOC);
    assert!(
        differences.is_empty(),
        "docs/pipeline.md disagrees with the config types (`meterflow config reference` prints them):\n{}",
        differences.join("\n")
    );
}

#[test]
fn a_missing_row_or_a_bogus_key_is_found() {
    let without_interval: String = DOC
        .lines()
        .filter(|line| !line.starts_with("| `packet_interval_s`"))
        .map(|line| format!("{line}\n"))
        .collect();
    let found = differences(&without_interval);
    assert!(
        found
            .iter()
            .any(|d| d.contains("packet_interval_s") && d.contains("not in the doc")),
        "{found:?}"
    );
    let bogus = DOC.replacen(
        "| `zstd_level` |",
        "| `zstd_speed` | integer | `3` | bogus |\n| `zstd_level` |",
        1,
    );
    let found = differences(&bogus);
    assert!(
        found
            .iter()
            .any(|d| d.contains("zstd_speed") && d.contains("refuses")),
        "{found:?}"
    );
    let wrong_default = DOC.replacen(
        "| `packet_grace_s` | float | `1.0` |",
        "| `packet_grace_s` | float | `2.0` |",
        1,
    );
    assert_ne!(wrong_default, DOC);
    assert!(differences(&wrong_default)
        .iter()
        .any(|d| d.contains("packet_grace_s") && d.contains("default")));
}

/// Each row key the doc names under a TOML header parses in a real file:
/// a cross-check of the schema walk against serde itself.
#[test]
fn documented_sections_parse_in_a_pipeline_file() {
    let file = r#"
name = "ref"
[source]
kind = "smartmeter_server"
[source.meters."lab"]
rate = 32000
measures = "v,i"
[dsp]
cycles_per_window = 10
[aggregation]
packet_interval_s = 1.0
[sink.parquet.tables]
raw = true
[sink.packets.build]
max_sensors_per_packet = 10
[sink.packets.targets.retry]
initial_backoff_ms = 100
[service]
packet_grace_s = 0.5
"#;
    meterflow::pipeline::PipelineConfig::parse(file).unwrap();
    let code = code_tables();
    let meters = code
        .get(&("[source.meters.\"<name>\"]".to_string(), None))
        .unwrap();
    assert_eq!(
        meters.keys().collect::<Vec<_>>(),
        ["measures", "rate"],
        "the per-meter table"
    );
}
