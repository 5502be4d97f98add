//! The benchmark harnesses behind `meterflow bench`: batch speed over a
//! generated capture, the stream sink under real-time virtual meters, and
//! a local cluster with its own nats-server. Each prints what it measured.

pub mod batch;
pub mod cluster;
pub mod nats;
pub mod proc_stats;
pub mod sink;

/// Total size of the files under `dir` (0 when it does not exist).
pub(crate) fn folder_bytes(dir: &std::path::Path) -> anyhow::Result<u64> {
    use anyhow::Context;
    let mut total = 0;
    if !dir.exists() {
        return Ok(0);
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        total += if path.is_dir() {
            folder_bytes(&path)?
        } else {
            std::fs::metadata(&path)?.len()
        };
    }
    Ok(total)
}
