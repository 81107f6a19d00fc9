//! The standard `process_*` metrics, read from the kernel at every scrape with sub-second
//! precision.
//!
//! The prometheus crate's own process collector keeps CPU time in an integer counter, so it
//! exports whole seconds (tikv/rust-prometheus #451, #560): for a process as light as camstream,
//! `rate(process_cpu_seconds_total[1m])` becomes a staircase. This one takes CPU time from
//! `CLOCK_PROCESS_CPUTIME_ID` (nanoseconds) and the rest from `/proc/self`, under the same
//! names, so dashboards and alert rules need no change.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Gauge, Opts};

/// Collects `process_*` metrics on every scrape.
pub struct ProcessCollector {
    cpu: Counter,
    open_fds: Gauge,
    max_fds: Gauge,
    virtual_memory: Gauge,
    resident_memory: Gauge,
    start_time: Gauge,
    threads: Gauge,
    descs: Vec<Desc>,
}

impl ProcessCollector {
    pub fn new() -> prometheus::Result<ProcessCollector> {
        let gauge = |name: &str, help: &str| Gauge::with_opts(Opts::new(name, help));
        let cpu = Counter::with_opts(Opts::new(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
        ))?;
        let open_fds = gauge("process_open_fds", "Number of open file descriptors.")?;
        let max_fds = gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
        )?;
        let virtual_memory = gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
        )?;
        let resident_memory = gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
        )?;
        let start_time = gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
        )?;
        let threads = gauge("process_threads", "Number of OS threads in the process.")?;
        let mut descs = Vec::new();
        for c in [&cpu as &dyn Collector, &open_fds, &max_fds, &virtual_memory]
            .into_iter()
            .chain([&resident_memory as &dyn Collector, &start_time, &threads])
        {
            descs.extend(c.desc().into_iter().cloned());
        }
        Ok(ProcessCollector {
            cpu,
            open_fds,
            max_fds,
            virtual_memory,
            resident_memory,
            start_time,
            threads,
            descs,
        })
    }

    /// Reads every value now.
    fn refresh(&self) {
        // The counter only goes up: add what was used since the last scrape.
        let total = cpu_seconds();
        let seen = self.cpu.get();
        if total > seen {
            self.cpu.inc_by(total - seen);
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            // The directory handle itself is one of the entries.
            self.open_fds.set(dir.count().saturating_sub(1) as f64);
        }
        self.max_fds.set(fd_limit());
        if let Some(stat) = Stat::read() {
            let page = page_size();
            self.virtual_memory.set(stat.vsize as f64);
            self.resident_memory.set((stat.rss_pages * page) as f64);
            self.threads.set(stat.threads as f64);
            if let Some(boot) = boot_time() {
                self.start_time
                    .set(boot as f64 + stat.start_ticks as f64 / clock_ticks());
            }
        }
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.refresh();
        let mut out = Vec::with_capacity(7);
        out.extend(self.cpu.collect());
        for g in [
            &self.open_fds,
            &self.max_fds,
            &self.virtual_memory,
            &self.resident_memory,
            &self.start_time,
            &self.threads,
        ] {
            out.extend(g.collect());
        }
        out
    }
}

/// CPU time of the whole process (every thread), user and system, in seconds.
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn fd_limit() -> f64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0.0;
    }
    lim.rlim_cur as f64
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as u64
    } else {
        4096
    }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory effects.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if n > 0 {
        n as f64
    } else {
        100.0
    }
}

/// Seconds since the epoch when the machine booted (`btime` in /proc/stat).
fn boot_time() -> Option<u64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// The fields of `/proc/self/stat` used here.
#[derive(Debug, PartialEq)]
struct Stat {
    threads: u64,
    start_ticks: u64,
    vsize: u64,
    rss_pages: u64,
}

impl Stat {
    fn read() -> Option<Stat> {
        Stat::parse(&std::fs::read_to_string("/proc/self/stat").ok()?)
    }

    /// Parses the line; the command name (field 2) may hold spaces and parentheses, so fields
    /// are counted from after its last `)`.
    fn parse(line: &str) -> Option<Stat> {
        let rest = &line[line.rfind(')')? + 1..];
        // `rest` starts at field 3 (state): field N is at index N - 3.
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
        Some(Stat {
            threads: field(20)?,
            start_ticks: field(22)?,
            vsize: field(23)?,
            rss_pages: field(24)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_hostile_command_name() {
        let line = "1234 (a) b (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 9 0 5000 \
                    12345678 321 18446744073709551615";
        assert_eq!(
            Stat::parse(line),
            Some(Stat {
                threads: 9,
                start_ticks: 5000,
                vsize: 12_345_678,
                rss_pages: 321,
            })
        );
        assert_eq!(Stat::parse("garbage"), None);
    }

    #[test]
    fn cpu_time_has_sub_second_precision() {
        let c = ProcessCollector::new().unwrap();
        // Burn a little CPU: well under a second, which the integer collector exported as 0.
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(30) {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        std::hint::black_box(x);
        let families = c.collect();
        let cpu = families
            .iter()
            .find(|f| f.name() == "process_cpu_seconds_total")
            .unwrap();
        let v = cpu.get_metric()[0].get_counter().get_value();
        assert!(v > 0.0 && v.fract() != 0.0, "{v}");
        let rss = families
            .iter()
            .find(|f| f.name() == "process_resident_memory_bytes")
            .unwrap();
        assert!(rss.get_metric()[0].get_gauge().get_value() > 1e6);
        assert_eq!(families.len(), 7);
    }
}
