//! The pipeline file's reference, read off the config types themselves (their
//! JSON schema): every section, every key with its type, default and doc
//! comment. `docs/pipeline.md` is checked against it, so the doc cannot
//! name a key the code refuses or miss one it takes.

use serde_json::{Map, Value};

use super::config::PipelineConfig;

/// Key of the tag that picks a `[source]` kind.
const TAG: &str = "kind";

/// Heading of the keys outside every table.
pub const TOP_LEVEL: &str = "(top level)";

/// One table of the TOML file, e.g. `[sink.parquet]` or `[[source.meter]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The TOML header (`[source]`, `[[source.meter]]`, `[source.meters."<name>"]`),
    /// or [`TOP_LEVEL`].
    pub header: String,
    /// For `[source]`: the `kind` these keys belong to.
    pub kind: Option<String>,
    pub keys: Vec<KeyDoc>,
}

/// One key of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDoc {
    pub name: String,
    pub ty: String,
    /// TOML value, `required`, `none` (an optional key), or empty when the
    /// default is not a plain value.
    pub default: String,
    pub meaning: String,
}

impl Section {
    /// How the section's heading reads in `docs/pipeline.md`.
    pub fn heading(&self) -> String {
        match &self.kind {
            Some(kind) => format!("`{}` {TAG} = \"{kind}\"", self.header),
            None if self.header == TOP_LEVEL => TOP_LEVEL.to_string(),
            None => format!("`{}`", self.header),
        }
    }
}

/// Every section that has keys of its own, in file order (parents first).
pub fn sections() -> Vec<Section> {
    let schema = schemars::schema_for!(PipelineConfig);
    let root = schema.as_value();
    let mut walker = Walker {
        root,
        sections: Vec::new(),
    };
    walker.table(root, &Path::default(), None);
    walker.sections.retain(|s| !s.keys.is_empty());
    walker.sections.sort_by_key(|s| file_rank(&s.header));
    walker.sections
}

/// Sections in the order a pipeline file usually has them.
fn file_rank(header: &str) -> usize {
    let top = header
        .trim_start_matches('[')
        .split(['.', ']'])
        .next()
        .unwrap_or_default();
    [
        "(top level)",
        "source",
        "dsp",
        "aggregation",
        "sink",
        "service",
        "record_log",
    ]
    .iter()
    .position(|t| *t == top)
    .unwrap_or(usize::MAX)
}

/// The tables of [`sections`] as Markdown (`| key | type | default | meaning |`).
pub fn markdown() -> String {
    let mut out = String::new();
    for section in sections() {
        out.push_str(&format!("## {}\n\n", section.heading()));
        out.push_str("| key | type | default | meaning |\n|---|---|---|---|\n");
        for key in &section.keys {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                key.name,
                cell(&key.ty),
                cell(&key.default),
                cell(&key.meaning)
            ));
        }
        out.push('\n');
    }
    out
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// Where a table sits: its dotted path and whether it is an array element.
#[derive(Debug, Clone, Default)]
struct Path {
    parts: Vec<String>,
    array: bool,
}

impl Path {
    fn child(&self, part: impl Into<String>, array: bool) -> Path {
        let mut parts = self.parts.clone();
        parts.push(part.into());
        Path { parts, array }
    }

    fn header(&self) -> String {
        if self.parts.is_empty() {
            return TOP_LEVEL.to_string();
        }
        let dotted = self.parts.join(".");
        if self.array {
            format!("[[{dotted}]]")
        } else {
            format!("[{dotted}]")
        }
    }
}

struct Walker<'a> {
    root: &'a Value,
    sections: Vec<Section>,
}

impl<'a> Walker<'a> {
    /// Follows `$ref`s into `$defs`.
    fn resolve(&self, mut schema: &'a Value) -> &'a Value {
        for _ in 0..32 {
            let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
                break;
            };
            let Some(name) = reference.strip_prefix("#/$defs/") else {
                break;
            };
            match self.root.get("$defs").and_then(|defs| defs.get(name)) {
                Some(target) => schema = target,
                None => break,
            }
        }
        schema
    }

    /// An `Option<T>` is `anyOf [T, null]`; this is T.
    fn unwrap_optional(&self, schema: &'a Value) -> &'a Value {
        let schema = self.resolve(schema);
        if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
            let not_null: Vec<&Value> = any
                .iter()
                .filter(|s| s.get("type").and_then(Value::as_str) != Some("null"))
                .collect();
            if let [only] = not_null.as_slice() {
                return self.resolve(only);
            }
        }
        schema
    }

    /// The properties of a struct, `#[serde(flatten)]`ed parts (`allOf`) included.
    fn properties(&self, schema: &'a Value) -> Vec<(&'a str, &'a Value)> {
        let schema = self.resolve(schema);
        let mut out: Vec<(&str, &Value)> = Vec::new();
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            out.extend(props.iter().map(|(k, v)| (k.as_str(), v)));
        }
        for part in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.extend(self.properties(part));
        }
        out
    }

    fn is_struct(&self, schema: &'a Value) -> bool {
        let schema = self.unwrap_optional(schema);
        schema.get("properties").is_some()
            || schema.get("allOf").is_some()
            || self.variants(schema).is_some()
    }

    /// Variants of an internally tagged enum: (tag value, variant schema).
    fn variants(&self, schema: &'a Value) -> Option<Vec<(String, &'a Value)>> {
        let one_of = self.resolve(schema).get("oneOf")?.as_array()?;
        one_of
            .iter()
            .map(|variant| {
                let tag = variant
                    .get("properties")?
                    .get(TAG)?
                    .get("const")?
                    .as_str()?;
                Some((tag.to_string(), variant))
            })
            .collect()
    }

    /// Collects the section at `path` and recurses into its sub-tables.
    fn table(&mut self, schema: &'a Value, path: &Path, kind: Option<String>) {
        if let Some(variants) = self.variants(schema) {
            for (tag, variant) in variants {
                self.table(variant, path, Some(tag));
            }
            return;
        }
        let header = path.header();
        let required: Vec<&str> = self
            .resolve(schema)
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut keys = Vec::new();
        let mut children = Vec::new();
        for (name, property) in self.properties(schema) {
            let value = self.unwrap_optional(property);
            if self.is_struct(value) {
                children.push((path.child(name, false), value));
            } else if let Some(items) = value.get("items").filter(|i| self.is_struct(i)) {
                children.push((path.child(name, true), self.unwrap_optional(items)));
            } else if let Some(entry) = value
                .get("additionalProperties")
                .filter(|e| self.is_struct(e))
            {
                let entry_path = path.child(name, false).child("\"<name>\"", false);
                children.push((entry_path, self.unwrap_optional(entry)));
            } else {
                keys.push(self.key(name, property, required.contains(&name)));
            }
        }
        // Sections of several kinds at one path (`[source.meters."<name>"]`
        // of both smartmeter kinds) are one table.
        let existing = self
            .sections
            .iter_mut()
            .find(|s| s.header == header && s.kind == kind);
        match existing {
            Some(section) => {
                for key in keys {
                    if !section.keys.iter().any(|k| k.name == key.name) {
                        section.keys.push(key);
                    }
                }
            }
            None => self.sections.push(Section { header, kind, keys }),
        }
        for (child, schema) in children {
            // Children of a tagged table do not depend on the kind for their header.
            self.table(schema, &child, None);
        }
    }

    fn key(&self, name: &str, property: &'a Value, required: bool) -> KeyDoc {
        let value = self.unwrap_optional(property);
        let optional = !std::ptr::eq(value, self.resolve(property)) || is_nullable(value);
        let default = match property.get("default") {
            _ if required => "required".to_string(),
            Some(Value::Null) => "none".to_string(),
            Some(default) => format!("`{}`", toml_value(default)),
            None if optional => "none".to_string(),
            None if value.get("type").and_then(Value::as_str) == Some("array") => {
                "`[]`".to_string()
            }
            None => String::new(),
        };
        if name == TAG {
            return KeyDoc {
                name: name.to_string(),
                ty: self.type_name(value),
                default: "required".to_string(),
                meaning: "Which source this is.".to_string(),
            };
        }
        let meaning = property
            .get("description")
            .or_else(|| value.get("description"))
            .and_then(Value::as_str)
            .map(prose)
            .unwrap_or_default();
        KeyDoc {
            name: name.to_string(),
            ty: self.type_name(value),
            default,
            meaning,
        }
    }

    fn type_name(&self, schema: &'a Value) -> String {
        let schema = self.unwrap_optional(schema);
        if let Some(constant) = schema.get("const") {
            return format!("`{}`", toml_value(constant));
        }
        if let Some(choices) = schema.get("enum").and_then(Value::as_array) {
            let choices: Vec<String> = choices
                .iter()
                .map(|c| format!("`{}`", toml_value(c)))
                .collect();
            return format!("one of {}", choices.join(", "));
        }
        let ty = match schema.get("type") {
            Some(Value::String(ty)) => ty.as_str(),
            Some(Value::Array(types)) => types
                .iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or("any"),
            _ => "any",
        };
        match ty {
            "array" => {
                let item = schema
                    .get("items")
                    .map_or_else(|| "any".to_string(), |i| self.type_name(i));
                match (schema.get("minItems"), schema.get("maxItems")) {
                    (Some(min), Some(max)) if min == max => format!("[{item}; {min}]"),
                    _ => format!("array of {item}"),
                }
            }
            "object" => {
                let entry = schema
                    .get("additionalProperties")
                    .filter(|e| e.is_object())
                    .map_or_else(|| "any".to_string(), |e| self.type_name(e));
                format!("table of {entry}")
            }
            "number" => "float".to_string(),
            "string" if schema.get("format").and_then(Value::as_str) == Some("uuid") => {
                "UUID string".to_string()
            }
            other => other.to_string(),
        }
    }
}

fn is_nullable(schema: &Value) -> bool {
    schema
        .get("type")
        .and_then(Value::as_array)
        .is_some_and(|types| types.iter().any(|t| t == "null"))
}

/// A JSON default written as TOML.
fn toml_value(value: &Value) -> String {
    match value {
        Value::Null => "none".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(toml_value).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => inline_table(map),
    }
}

fn inline_table(map: &Map<String, Value>) -> String {
    if map.is_empty() {
        return "{}".to_string();
    }
    let entries: Vec<String> = map
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| format!("{k} = {}", toml_value(v)))
        .collect();
    format!("{{ {} }}", entries.join(", "))
}

/// A doc comment as one line of prose: joined lines, intra-doc links unwrapped.
fn prose(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    joined.replace("[`", "`").replace("`]", "`")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section<'a>(all: &'a [Section], header: &str, kind: Option<&str>) -> &'a Section {
        all.iter()
            .find(|s| s.header == header && s.kind.as_deref() == kind)
            .unwrap_or_else(|| panic!("no section {header} {kind:?}"))
    }

    fn names(section: &Section) -> Vec<&str> {
        section.keys.iter().map(|k| k.name.as_str()).collect()
    }

    #[test]
    fn tagged_sources_maps_arrays_and_options_become_sections() {
        let all = sections();
        let files = section(&all, "[source]", Some("files"));
        assert_eq!(names(files), ["kind", "paths"]);
        assert_eq!(files.keys[0].default, "required");
        let raw = section(&all, "[source.raw]", None);
        assert_eq!(names(raw), ["measures", "name", "rate", "start"]);
        assert!(raw.keys.iter().all(|k| k.default == "none"));
        section(&all, "[[source.meter]]", None);
        section(&all, "[source.meter.signal]", None);
        section(&all, "[[source.meter.signal.voltage_harmonics]]", None);
        let meters = section(&all, "[source.meters.\"<name>\"]", None);
        assert_eq!(names(meters), ["measures", "rate"]);
        section(&all, "[source.rtl433.mqtt]", None);
        section(&all, "[sink.packets.targets.http]", None);
        let parquet = section(&all, "[sink.parquet]", None);
        let zstd = parquet.keys.iter().find(|k| k.name == "zstd_level");
        assert_eq!(zstd.map(|k| k.default.as_str()), Some("`3`"));
        let top = section(&all, TOP_LEVEL, None);
        assert_eq!(names(top), ["name"]);
    }
}
