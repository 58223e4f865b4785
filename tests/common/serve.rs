//! Starting `cafe24-komoju serve` as a process of its own, shared by the integration tests
//! (`tests/api/processes.rs`) and the throughput benchmark.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command};

/// Spawns the binary's `serve` with only `PATH`, `RUST_LOG=info` and `env` in its
/// environment, its stdout and stderr appended to `log`; on the CPUs `cpus` names (a
/// `taskset -c` list such as `1` or `2,3`) when given, the benchmark's way of giving the
/// service cores its load generator does not use. Panics when it cannot start.
pub fn spawn(cpus: Option<&str>, env: &HashMap<String, String>, log: &Path) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("{e}"));
    let err = out.try_clone().unwrap_or_else(|e| panic!("{e}"));
    let binary = env!("CARGO_BIN_EXE_cafe24-komoju");
    let mut command = match cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpus, binary]);
            c
        }
        None => Command::new(binary),
    };
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .envs(env)
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn the service: {e}"))
}
