//! Peak memory and CPU time of hookd and of PostgreSQL during a scenario, read from `/proc`.
//!
//! PostgreSQL's memory is the sum of its processes' proportional set sizes (shared buffers are
//! shared, so plain RSS would count them once per backend). Its CPU time includes backends that
//! exited during the scenario, through the postmaster's reaped-children times.
//!
//! Reading a process's PSS walks its page tables (for a backend, every page of shared buffers it
//! touched): sampled every 250 ms over some 50 backends it took a tenth of a core from the
//! machine under test, so PostgreSQL's memory is sampled every 2 s, hookd's every 250 ms.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// Resource use over one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub hookd_peak_rss_mib: f64,
    pub hookd_cpu_seconds: f64,
    /// CPU time / wall time: 1.0 is one core busy.
    pub hookd_cores: f64,
    pub postgres_peak_pss_mib: f64,
    pub postgres_cpu_seconds: f64,
    pub postgres_cores: f64,
}

/// How often hookd's RSS is sampled (its peak comes from the kernel's VmHWM anyway).
const HOOKD_EVERY: Duration = Duration::from_millis(250);

/// How often PostgreSQL's PSS is sampled, in HOOKD_EVERY ticks.
const POSTGRES_EVERY_TICKS: u32 = 8;

/// Samples hookd's and PostgreSQL's processes until [`Sampler::finish`].
pub struct Sampler {
    hookd: Vec<u32>,
    postmaster: Option<u32>,
    started: Instant,
    hookd_cpu_start: f64,
    postgres_cpu_start: f64,
    peak_hookd_kib: Arc<AtomicU64>,
    peak_postgres_kib: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl Sampler {
    /// `postgres_backend` is any backend's pid (`pg_backend_pid()`): its parent is the postmaster.
    pub fn start(hookd: Vec<u32>, postgres_backend: Option<u32>) -> Self {
        let postmaster = postgres_backend.and_then(parent_of);
        let peak_hookd_kib = Arc::new(AtomicU64::new(0));
        let peak_postgres_kib = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let (pids, postmaster_pid) = (hookd.clone(), postmaster);
        let (hookd_peak, postgres_peak, stopped) = (
            peak_hookd_kib.clone(),
            peak_postgres_kib.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(HOOKD_EVERY);
            for tick in 0u32.. {
                tokio::select! {
                    () = stopped.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                let rss: u64 = pids.iter().filter_map(|p| status_kib(*p, "VmRSS:")).sum();
                hookd_peak.fetch_max(rss, Ordering::Relaxed);
                if let Some(postmaster) = postmaster_pid
                    && tick % POSTGRES_EVERY_TICKS == 0
                {
                    postgres_peak.fetch_max(postgres_pss_kib(postmaster), Ordering::Relaxed);
                }
            }
        });
        Self {
            hookd_cpu_start: hookd.iter().map(|p| cpu_seconds(*p, false)).sum(),
            postgres_cpu_start: postmaster.map_or(0.0, postgres_cpu),
            hookd,
            postmaster,
            started: Instant::now(),
            peak_hookd_kib,
            peak_postgres_kib,
            stop,
        }
    }

    pub fn finish(self) -> Usage {
        self.stop.cancel();
        let wall = self.started.elapsed().as_secs_f64().max(1e-9);
        // VmHWM is the kernel's own peak, finer than any sampling.
        let hookd_peak_kib = self
            .hookd
            .iter()
            .filter_map(|p| status_kib(*p, "VmHWM:"))
            .sum::<u64>()
            .max(self.peak_hookd_kib.load(Ordering::Relaxed));
        let hookd_cpu = self
            .hookd
            .iter()
            .map(|p| cpu_seconds(*p, false))
            .sum::<f64>()
            - self.hookd_cpu_start;
        let postgres_cpu = self.postmaster.map_or(0.0, postgres_cpu) - self.postgres_cpu_start;
        // A last sample, so that a scenario shorter than the PostgreSQL interval has one.
        if let Some(postmaster) = self.postmaster {
            self.peak_postgres_kib
                .fetch_max(postgres_pss_kib(postmaster), Ordering::Relaxed);
        }
        Usage {
            hookd_peak_rss_mib: hookd_peak_kib as f64 / 1024.0,
            hookd_cpu_seconds: hookd_cpu,
            hookd_cores: hookd_cpu / wall,
            postgres_peak_pss_mib: self.peak_postgres_kib.load(Ordering::Relaxed) as f64 / 1024.0,
            postgres_cpu_seconds: postgres_cpu,
            postgres_cores: postgres_cpu / wall,
        }
    }
}

fn ticks_per_second() -> f64 {
    // Linux reports CPU times in clock ticks; USER_HZ is 100 on every mainstream platform.
    100.0
}

/// Fields of /proc/<pid>/stat after the command name.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    Some(after_name.split_whitespace().map(str::to_owned).collect())
}

fn parent_of(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// utime + stime (and, with `children`, the reaped children's cutime + cstime).
fn cpu_seconds(pid: u32, children: bool) -> f64 {
    let Some(fields) = stat_fields(pid) else {
        return 0.0;
    };
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Indices after the name: state=0, ppid=1, … utime=11, stime=12, cutime=13, cstime=14.
    let mut ticks = field(11) + field(12);
    if children {
        ticks += field(13) + field(14);
    }
    ticks / ticks_per_second()
}

fn postgres_cpu(postmaster: u32) -> f64 {
    cpu_seconds(postmaster, true)
        + family(postmaster)
            .iter()
            .filter(|p| **p != postmaster)
            .map(|p| cpu_seconds(*p, false))
            .sum::<f64>()
}

/// The process and its direct children.
fn family(parent: u32) -> Vec<u32> {
    let mut pids = vec![parent];
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            if let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok())
                && parent_of(pid) == Some(parent)
            {
                pids.push(pid);
            }
        }
    }
    pids
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&status, field)
}

fn postgres_pss_kib(postmaster: u32) -> u64 {
    family(postmaster).iter().filter_map(|p| pss_kib(*p)).sum()
}

fn pss_kib(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    kib_field(&rollup, "Pss:")
}

fn kib_field(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}
