//! What processes cost, read from `/proc` (Linux): CPU time of a process or
//! of every process with a given name, and peak resident memory.

use std::time::Instant;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on
/// every Linux the project runs on).
const TICKS_PER_S: f64 = 100.0;

/// CPU seconds (user + system) used so far by `pid`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields
    // are counted after its closing one. utime and stime are fields 14
    // and 15, the 12th and 13th after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_S)
}

/// The processes whose command name (`/proc/<pid>/comm`) is `name`.
pub fn pids_named(name: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == name)
        })
        .collect()
}

/// CPU seconds used so far by every process named `name` (processes that
/// end between two samples drop out, so a sum over a window can only
/// undercount).
pub fn cpu_seconds_named(name: &str) -> f64 {
    pids_named(name).into_iter().filter_map(cpu_seconds).sum()
}

/// `VmHWM` of a process (peak resident memory), in bytes.
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

/// `VmRSS` of a process (resident memory now), in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

/// CPU used by the engine, PostgreSQL and nats-server over a window, in
/// cores (CPU seconds per second of wall time).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct CpuCores {
    pub engine: f64,
    pub postgres: f64,
    pub nats_server: f64,
}

/// A sample of the three at one instant; [`CpuSample::since`] gives the
/// window's use.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    at: Instant,
    engine: f64,
    postgres: f64,
    nats_server: f64,
}

impl CpuSample {
    pub fn now(engine_pid: u32) -> Self {
        CpuSample {
            at: Instant::now(),
            engine: cpu_seconds(engine_pid).unwrap_or(0.0),
            postgres: cpu_seconds_named("postgres"),
            nats_server: cpu_seconds_named("nats-server"),
        }
    }

    /// The cores used from `earlier` to this sample.
    pub fn since(&self, earlier: &CpuSample) -> CpuCores {
        let wall = self.at.duration_since(earlier.at).as_secs_f64().max(1e-9);
        let per_s = |now: f64, then: f64| ((now - then).max(0.0) / wall * 100.0).round() / 100.0;
        CpuCores {
            engine: per_s(self.engine, earlier.engine),
            postgres: per_s(self.postgres, earlier.postgres),
            nats_server: per_s(self.nats_server, earlier.nats_server),
        }
    }
}
