//! One process per record log: two sinks (or writers) appending to one
//! folder would interleave their segments. An exclusive lock (`flock` on
//! Unix, through std's `File::try_lock`) on a file in
//! the folder is held while the log is open; the kernel drops it when the
//! process dies, so kill -9 leaves no stale lock behind. A child forked by
//! this process holds a copy of the descriptor until its `exec` closes it,
//! and a restarted node may start while its predecessor is still exiting, so
//! a held lock is retried for a short while before it counts as taken.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

pub const LOCK_FILE: &str = "LOCK";

/// Long enough for a fork to reach its `exec`, short enough for an operator
/// who started a second node on the same folder to see the error at once.
const WAIT_FOR_HOLDER: Duration = Duration::from_secs(3);

/// Held for the life of the log; the lock goes with the file.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    pub fn acquire(dir: &Path) -> anyhow::Result<Self> {
        Self::acquire_within(dir, WAIT_FOR_HOLDER)
    }

    fn acquire_within(dir: &Path, wait: Duration) -> anyhow::Result<Self> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let deadline = Instant::now() + wait;
        let locked = loop {
            match file.try_lock() {
                Ok(()) => break true,
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(error)) => {
                    return Err(error).with_context(|| format!("locking {}", path.display()));
                }
            }
            if Instant::now() >= deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if !locked {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            anyhow::bail!(
                "the record log {} is in use by another meterflow process (pid {}); \
                 give each sink or writer its own state_dir",
                dir.display(),
                holder.trim()
            );
        }
        // The holder's pid, for the message above (best effort).
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{}", std::process::id());
        Ok(DirLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        let second = DirLock::acquire_within(dir.path(), Duration::from_millis(50))
            .unwrap_err()
            .to_string();
        assert!(
            second.contains("in use by another meterflow process"),
            "{second}"
        );
        assert!(second.contains(&std::process::id().to_string()), "{second}");
        drop(first);
        DirLock::acquire(dir.path()).unwrap();
    }
}
