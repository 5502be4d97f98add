//! `&'static str` fields (units, standard keys, adapter names) read back
//! from the record log: each distinct text is kept once for the life of the
//! process. They come from the program's own fixed tables, so the set stays
//! small.

use std::collections::HashSet;
use std::sync::Mutex;

use serde::{Deserialize, Deserializer};

static INTERNED: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);

/// The one `'static` copy of `text`.
pub fn intern(text: &str) -> &'static str {
    let mut guard = INTERNED.lock().unwrap_or_else(|e| e.into_inner());
    let set = guard.get_or_insert_with(HashSet::new);
    if let Some(known) = set.get(text) {
        return known;
    }
    let leaked: &'static str = Box::leak(text.to_owned().into_boxed_str());
    set.insert(leaked);
    leaked
}

pub fn static_str<'de, D: Deserializer<'de>>(deserializer: D) -> Result<&'static str, D::Error> {
    let text = String::deserialize(deserializer)?;
    Ok(intern(&text))
}

pub fn option_static_str<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<&'static str>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?;
    Ok(text.map(|t| intern(&t)))
}

/// JSON values inside records, written as JSON text: the log's binary
/// format cannot carry self-describing values.
pub mod json_pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(
        pairs: &[(String, serde_json::Value)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let texts: Vec<(&str, String)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_string()))
            .collect();
        texts.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<(String, serde_json::Value)>, D::Error> {
        let texts = Vec::<(String, String)>::deserialize(deserializer)?;
        texts
            .into_iter()
            .map(|(k, v)| {
                serde_json::from_str(&v)
                    .map(|v| (k, v))
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    }
}

/// A `'static` text field; an alias, so serde's derive does not take the
/// field for one borrowed from the input.
pub type StaticStr = &'static str;
