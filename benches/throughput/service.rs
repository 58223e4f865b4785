//! The service under test: the release binary `cafe24-komoju serve`, in a process of its
//! own (as in production), logging at `info` to a file. Its CPU time and peak resident
//! memory are read from `/proc`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct Service {
    pub addr: SocketAddr,
    child: Child,
}

impl Service {
    /// Starts `serve` with `env` (plus `BIND_ADDR` and `PUBLIC_BASE_URL` on a free port),
    /// on the CPUs `BENCH_SERVICE_CPUS` names if set (`taskset -c`), and waits until
    /// `/health` answers.
    pub async fn start(env: &HashMap<String, String>, log: &Path) -> Service {
        let (l, addr) = super::standins::listener();
        drop(l);
        let mut env = env.clone();
        env.insert("BIND_ADDR".into(), addr.to_string());
        env.insert("PUBLIC_BASE_URL".into(), format!("http://{addr}"));
        let cpus = std::env::var("BENCH_SERVICE_CPUS").ok();
        let child = crate::serve_fixture::spawn(cpus.as_deref(), &env, log);
        let mut service = Service { addr, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client.get(format!("http://{addr}/health")).send().await {
                if r.status() == 200 {
                    return service;
                }
            }
            if let Ok(Some(status)) = service.child.try_wait() {
                panic!("the service exited ({status}); see {}", log.display());
            }
            assert!(
                Instant::now() < deadline,
                "the service never became healthy"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User + system CPU time the process has used so far.
    pub fn cpu(&self) -> Duration {
        cpu_of(self.pid())
    }

    /// What `work` returns, and the service's CPU (user + system) while it ran.
    pub fn cpu_over<T>(&self, work: impl FnOnce() -> T) -> (T, Duration) {
        let before = self.cpu();
        let out = work();
        (out, self.cpu() - before)
    }

    /// Peak resident set size so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    }

    /// SIGTERM, then waits for the process to finish its graceful shutdown.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The read system calls process `pid` has made (`syscr` of `/proc/<pid>/io`): file
/// reads, which for the service are SQLite's reads of pages its cache did not hold
/// (sockets are read with `recv`, not counted).
pub fn read_syscalls_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("syscr: ")?.trim().parse().ok())
        .unwrap_or(0)
}

/// User + system CPU time of process `pid` (`/proc/PID/stat`, clock ticks of 10 ms).
pub fn cpu_of(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    super::wire::stat_cpu(&stat, false)
}
