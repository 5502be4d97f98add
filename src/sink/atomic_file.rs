//! Files replaced in one step: a reader (or a crash) sees the old content or
//! the new, never half of it.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// Write to a sibling temporary file, fsync, rename over `path`, fsync the folder.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{file_name}.tmp"));
    let mut file =
        std::fs::File::create(&temp).with_context(|| format!("creating {}", temp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temp.display()))?;
    drop(file);
    std::fs::rename(&temp, path)
        .with_context(|| format!("renaming {} to {}", temp.display(), path.display()))?;
    if let Ok(dir) = std::fs::File::open(dir) {
        // Makes the rename itself durable; not every filesystem allows it.
        let _ = dir.sync_all();
    }
    Ok(())
}
