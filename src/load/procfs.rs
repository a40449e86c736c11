//! CPU time and memory of this process, from Linux's /proc (zero or `None` elsewhere).
//!
//! CPU times come in clock ticks of 10 ms (USER_HZ is 100 on every Linux the engine runs
//! on), so measure over seconds, not milliseconds.

use std::time::Duration;

const TICK: Duration = Duration::from_millis(10);

/// utime + stime from the text of a `stat` file (fields 14 and 15; the name in parentheses
/// may hold spaces, so count from the last `)`).
fn stat_cpu(stat: &str) -> Option<(String, Duration)> {
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(').map_or("", |(_, n)| n).to_owned();
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((
        name,
        TICK * u32::try_from(utime + stime).unwrap_or(u32::MAX),
    ))
}

/// CPU time (user + system) of the whole process so far.
pub fn process_cpu() -> Duration {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| stat_cpu(&s))
        .map_or(Duration::ZERO, |(_, d)| d)
}

/// CPU time (user + system) of the calling thread so far.
pub fn current_thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|s| stat_cpu(&s))
        .map_or(Duration::ZERO, |(_, d)| d)
}

/// CPU time of this process's threads, grouped by the first of `prefixes` each thread's
/// name starts with; threads matching none are added to the last slot (index
/// `prefixes.len()`). Threads that ended are not counted.
pub fn thread_cpu(prefixes: &[&str]) -> Vec<Duration> {
    let mut out = vec![Duration::ZERO; prefixes.len() + 1];
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    // A process has a bounded number of threads; the directory listing is finite.
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let Some((name, cpu)) = stat_cpu(&stat) else {
            continue;
        };
        let slot = prefixes
            .iter()
            .position(|p| name.starts_with(p))
            .unwrap_or(prefixes.len());
        out[slot] += cpu;
    }
    out
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Peak resident memory (VmHWM), bytes.
pub fn peak_rss() -> Option<u64> {
    status_kib("VmHWM:").map(|k| k * 1024)
}

/// Resident memory now (VmRSS), bytes.
pub fn rss() -> Option<u64> {
    status_kib("VmRSS:").map(|k| k * 1024)
}

/// Resets the peak resident memory to the current one (Linux 4.0+); false when the kernel
/// does not allow it, and the peak then stays the peak since start.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_from_a_stat_line_with_spaces_in_the_name() {
        let line = "42 (tokio (worker) 1) S 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 9";
        let (name, cpu) = stat_cpu(line).unwrap();
        assert_eq!(name, "tokio (worker) 1");
        assert_eq!(cpu, Duration::from_millis(2_800));
        assert!(stat_cpu("garbage").is_none());
    }
}
