//! The shape of the crate: data flows one way, so every `crate::` path
//! between top-level modules must be an edge of the layer list below (from
//! DESIGN.md), and no two modules may depend on each other, directly or
//! through others. Reads the `crate::` paths of every source file (use
//! lines, `use crate::{a::x, b::y}` groups over several lines, and inline
//! paths) and fails naming the file and line of each edge not on the list.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which top-level modules each top-level module may name.
const ALLOWED: &[(&str, &[&str])] = &[
    (
        "cli",
        &["pipeline", "report", "bench", "meter", "model", "wire"],
    ),
    // `model` and `wire` are the vocabulary every stage may use (the CLI
    // parses layouts with `wire`'s types).
    // The sink bench builds the meter stream source itself to read its
    // per-meter counters while it runs.
    ("bench", &["pipeline", "source", "meter", "model", "wire"]),
    (
        "pipeline",
        &["source", "dsp", "sink", "nats", "model", "wire", "meter"],
    ),
    ("report", &["model", "wire"]),
    // Cluster mode's transport (settings, subjects, record batches,
    // connections): the writer's consumer reads what the ingest node's
    // output publishes.
    ("source", &["nats", "model", "wire"]),
    ("sink", &["nats", "model", "wire"]),
    ("nats", &["model", "wire"]),
    ("dsp", &["model", "wire"]),
    ("meter", &["model", "wire"]),
    ("model", &["wire"]),
    ("wire", &[]),
];

/// One `crate::` path from a file of one top-level module to another.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Edge {
    from: String,
    to: String,
    file: String,
    line: usize,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn identifier(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The top-level modules `text` names through `crate::`, with their line
/// numbers (1-based). Comments after `//` are left out.
fn names_in(text: &str) -> Vec<(String, usize)> {
    let code: Vec<&str> = text
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect();
    let mut found = Vec::new();
    // The binary's modules (the CLI) name the library as `meterflow::`.
    for prefix in ["crate::", "meterflow::"] {
        for (index, line) in code.iter().enumerate() {
            for (at, _) in line.match_indices(prefix) {
                let rest = &line[at + prefix.len()..];
                let target = identifier(rest);
                if !target.is_empty() {
                    found.push((target, index + 1));
                } else if rest.starts_with('{') {
                    found.extend(group_heads(&code, index, at + prefix.len() + 1));
                }
            }
        }
    }
    found
}

/// The first path segment of each item of a `crate::{...}` group that
/// starts at `code[line][column]`, which may span several lines.
fn group_heads(code: &[&str], line: usize, column: usize) -> Vec<(String, usize)> {
    let mut heads = Vec::new();
    let mut depth = 1;
    let mut item_start = true;
    for (index, text) in code.iter().enumerate().skip(line) {
        let from = if index == line { column } else { 0 };
        for (offset, c) in text[from..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return heads;
                    }
                }
                ',' if depth == 1 => item_start = true,
                c if item_start && depth == 1 && !c.is_whitespace() => {
                    item_start = false;
                    let head = identifier(&text[from + offset..]);
                    if !head.is_empty() && head != "self" {
                        heads.push((head, index + 1));
                    }
                }
                _ => {}
            }
        }
    }
    heads
}

/// Every edge between top-level modules under `src`.
fn edges(src: &Path) -> Vec<Edge> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut all = Vec::new();
    for file in files {
        let relative = file.strip_prefix(src).unwrap_or(&file);
        let first = relative
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        for (target, line) in names_in(&text) {
            if target != module {
                all.push(Edge {
                    from: module.clone(),
                    to: target,
                    file: format!("src/{}", relative.display()),
                    line,
                });
            }
        }
    }
    all
}

/// Top-level module → the top-level modules its code names through `crate::`.
fn graph_of(edges: &[Edge], src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // Modules without edges are nodes too.
    let entries = std::fs::read_dir(src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let module = name.trim_end_matches(".rs").to_string();
        if module != "lib" && module != "main" {
            graph.entry(module).or_default();
        }
    }
    for edge in edges {
        graph
            .entry(edge.from.clone())
            .or_default()
            .insert(edge.to.clone());
    }
    graph
}

/// The edges not on `allowed`, one line each: file, line and the edge.
fn forbidden(edges: &[Edge], allowed: &[(&str, &[&str])]) -> Vec<String> {
    edges
        .iter()
        .filter_map(|edge| {
            let targets = allowed
                .iter()
                .find(|(from, _)| *from == edge.from)
                .map(|(_, to)| *to);
            let why = match targets {
                None => "a top-level module missing from the layer list",
                Some(to) if to.contains(&edge.to.as_str()) => return None,
                Some(_) => "not an allowed edge",
            };
            Some(format!(
                "{}:{}: {} -> {} ({why})",
                edge.file, edge.line, edge.from, edge.to
            ))
        })
        .collect()
}

/// A cycle through the graph, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn top_level_modules_have_no_cycle() {
    let src = src();
    let graph = graph_of(&edges(&src), &src);
    assert!(
        graph.contains_key("model") && graph.contains_key("sink"),
        "{graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "import cycle between top-level modules: {}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn every_edge_is_on_the_layer_list() {
    let src = src();
    let all = edges(&src);
    assert!(
        all.iter().any(|e| e.from == "pipeline" && e.to == "dsp"),
        "the scan found no pipeline -> dsp edge: it reads nothing"
    );
    let wrong = forbidden(&all, ALLOWED);
    assert!(
        wrong.is_empty(),
        "edges outside the layer list (tests/module_layers.rs, DESIGN.md):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_vocabulary_and_the_engine_stay_neutral() {
    let src = src();
    let all = edges(&src);
    for (from, to) in [
        ("model", "dsp"),
        ("model", "source"),
        ("model", "sink"),
        ("model", "pipeline"),
        ("model", "meter"),
        ("sink", "dsp"),
        ("dsp", "meter"),
        ("source", "sink"),
        ("sink", "source"),
    ] {
        let uses: Vec<String> = all
            .iter()
            .filter(|e| e.from == from && e.to == to)
            .map(|e| format!("{}:{}", e.file, e.line))
            .collect();
        assert!(
            uses.is_empty(),
            "{from} must not depend on {to}: {}",
            uses.join(", ")
        );
    }
}

#[test]
fn the_scan_reads_groups_over_several_lines_and_skips_comments() {
    let text = "use crate::wire::Frame;\n\
                // use crate::sink::Old;\n\
                use crate::{\n    \
                    dsp::Engine,\n    \
                    model::{Record, WindowRow},\n\
                };\n\
                fn f() { crate::meter::run(); } // crate::cli\n";
    assert_eq!(
        names_in(text),
        vec![
            ("wire".to_string(), 1),
            ("dsp".to_string(), 4),
            ("model".to_string(), 5),
            ("meter".to_string(), 7),
        ]
    );
}

#[test]
fn the_layer_check_names_a_forbidden_edge() {
    let edge = |from: &str, to: &str, line| Edge {
        from: from.into(),
        to: to.into(),
        file: format!("src/{from}/x.rs"),
        line,
    };
    let allowed: &[(&str, &[&str])] = &[("sink", &["model"]), ("model", &[])];
    let found = forbidden(
        &[
            edge("sink", "model", 3),
            edge("sink", "dsp", 7),
            edge("dsp", "model", 9),
        ],
        allowed,
    );
    assert_eq!(
        found,
        vec![
            "src/sink/x.rs:7: sink -> dsp (not an allowed edge)".to_string(),
            "src/dsp/x.rs:9: dsp -> model (a top-level module missing from the layer list)"
                .to_string(),
        ]
    );
}

#[test]
fn the_cycle_check_sees_a_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.entry("a".into()).or_default().insert("b".into());
    graph.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&graph), None);
    graph.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}
