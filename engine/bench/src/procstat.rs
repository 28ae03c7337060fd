//! What processes cost, read from `/proc` (Linux): CPU time of a process or
//! of every process with a given name, and peak resident memory.

use std::collections::HashMap;
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

/// CPU seconds used so far by each process named `name`, by process id.
pub fn cpu_seconds_named(name: &str) -> HashMap<u32, f64> {
    pids_named(name)
        .into_iter()
        .filter_map(|pid| Some((pid, cpu_seconds(pid)?)))
        .collect()
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

/// CPU used by the engine, PostgreSQL, nats-server and the load generator
/// (this process) over a window, in cores (CPU seconds per second of wall
/// time).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct CpuCores {
    pub engine: f64,
    pub postgres: f64,
    pub nats_server: f64,
    pub load_generator: f64,
}

/// A sample of the four at one instant; [`CpuSample::since`] gives the
/// window's use.
#[derive(Debug, Clone)]
pub struct CpuSample {
    at: Instant,
    engine: f64,
    postgres: HashMap<u32, f64>,
    nats_server: HashMap<u32, f64>,
    load_generator: f64,
}

impl CpuSample {
    pub fn now(engine_pid: u32) -> Self {
        Self::of_engines(&[engine_pid])
    }

    /// As [`now`](Self::now), the engines' time summed.
    pub fn of_engines(engine_pids: &[u32]) -> Self {
        CpuSample {
            at: Instant::now(),
            engine: engine_pids
                .iter()
                .map(|pid| cpu_seconds(*pid).unwrap_or(0.0))
                .sum(),
            postgres: cpu_seconds_named("postgres"),
            nats_server: cpu_seconds_named("nats-server"),
            load_generator: cpu_seconds(std::process::id()).unwrap_or(0.0),
        }
    }

    /// The cores used from `earlier` to this sample. Per process: one that
    /// started in the window counts all its time, one that ended in it
    /// drops out (its last moments are not counted).
    pub fn since(&self, earlier: &CpuSample) -> CpuCores {
        let wall = self.at.duration_since(earlier.at).as_secs_f64().max(1e-9);
        let cores = |seconds: f64| (seconds.max(0.0) / wall * 100.0).round() / 100.0;
        let grown = |now: &HashMap<u32, f64>, then: &HashMap<u32, f64>| -> f64 {
            now.iter()
                .map(|(pid, s)| (s - then.get(pid).copied().unwrap_or(0.0)).max(0.0))
                .sum()
        };
        CpuCores {
            engine: cores(self.engine - earlier.engine),
            postgres: cores(grown(&self.postgres, &earlier.postgres)),
            nats_server: cores(grown(&self.nats_server, &earlier.nats_server)),
            load_generator: cores(self.load_generator - earlier.load_generator),
        }
    }
}
