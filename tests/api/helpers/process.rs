//! The real `cafe24-komoju serve` binary in a process of its own.

use super::*;

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The real `cafe24-komoju serve` binary in its own process.
pub struct ServiceProcess {
    pub address: String,
    child: std::process::Child,
    env: HashMap<String, String>,
    log: std::path::PathBuf,
}

impl ServiceProcess {
    /// Starts `serve` with `env` and waits until `/health` answers.
    pub async fn start(env: HashMap<String, String>, log: std::path::PathBuf) -> ServiceProcess {
        let address = format!("http://{}", env["BIND_ADDR"]);
        let child = Self::spawn(&env, &log);
        let mut p = ServiceProcess {
            address,
            child,
            env,
            log,
        };
        p.wait_healthy().await;
        p
    }

    fn spawn(env: &HashMap<String, String>, log: &std::path::Path) -> std::process::Child {
        crate::serve_fixture::spawn(None, env, log)
    }

    async fn wait_healthy(&mut self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/health", self.address)).await {
                if r.status() == 200 {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "service exited ({status}); log: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "service never became healthy"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM without waiting.
    pub fn signal_term(&self) {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
    }

    /// Waits up to `limit` for the process to exit; its status, or `None` if it still runs.
    pub async fn wait_exit(
        &mut self,
        limit: std::time::Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then waits for the process to exit.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().ok()
    }

    pub async fn restart(&mut self) {
        self.child = Self::spawn(&self.env, &self.log);
        self.wait_healthy().await;
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
