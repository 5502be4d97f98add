//! What a process costs, read from Linux's `/proc`: resident memory (now
//! and at its peak) and CPU seconds, of this process or of a child the
//! bench started.

/// Peak resident set (VmHWM) of this process or `pid`, KiB.
pub fn peak_rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(proc_file(pid, "status")).ok()?;
    status_kib(&status, "VmHWM:")
}

/// Resident set now (VmRSS) of this process or `pid`, KiB.
pub fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(proc_file(pid, "status")).ok()?;
    status_kib(&status, "VmRSS:")
}

/// User + system CPU seconds of this process or `pid`.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let stat = std::fs::read_to_string(proc_file(pid, "stat")).ok()?;
    let ticks = cpu_ticks(&stat)?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then(|| ticks as f64 / per_second as f64)
}

fn proc_file(pid: Option<u32>, name: &str) -> String {
    match pid {
        Some(pid) => format!("/proc/{pid}/{name}"),
        None => format!("/proc/self/{name}"),
    }
}

/// A `key` line (e.g. `VmHWM:`) of a `/proc/<pid>/status` text, KiB.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line, clock ticks.
fn cpu_ticks(stat: &str) -> Option<u64> {
    // Fields after the command name (which may hold spaces and parentheses)
    // start at state, field 3.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_resident_set_is_read_off_vm_hwm() {
        let status =
            "Name:\tmeterflow\nVmPeak:\t  900000 kB\nVmHWM:\t  123456 kB\nVmRSS:\t  100000 kB\n";
        assert_eq!(status_kib(status, "VmHWM:"), Some(123_456));
        assert_eq!(status_kib(status, "VmRSS:"), Some(100_000));
        assert_eq!(status_kib("Name:\tx\nVmRSS:\t 5 kB\n", "VmHWM:"), None);
    }

    #[test]
    fn cpu_ticks_are_utime_plus_stime_after_the_command_name() {
        // pid (comm) state ppid pgrp session tty_nr tpgid flags minflt
        // cminflt majflt cmajflt utime stime ...; the name holds ") (".
        let stat = "4242 (a) (b c) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 75 0 0 20 0 3 0";
        assert_eq!(cpu_ticks(stat), Some(325));
        assert_eq!(cpu_ticks("4242 (short) S 1 2"), None);
        assert_eq!(cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn this_process_has_a_peak_and_has_used_cpu() {
        let rss = peak_rss_kib(None).unwrap_or(0);
        assert!(rss > 100, "{rss} KiB");
        let before = cpu_seconds(None).unwrap_or(f64::NAN);
        assert!(before >= 0.0, "{before}");
        // Spinning for a while shows up as CPU time (ticks of 10 ms, so 50 ms).
        let mut x = 0u64;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut used = 0.0;
        while used < 0.05 && std::time::Instant::now() < deadline {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            used = cpu_seconds(None).unwrap_or(f64::NAN) - before;
        }
        assert!(used >= 0.05, "{used} s of CPU after spinning");
    }
}
