//! Starting `cafe24-komoju serve` as a process of its own, shared by the integration tests
//! (`tests/api/processes.rs`) and the throughput benchmark.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command};

/// Spawns the binary's `serve` with only `PATH`, `RUST_LOG=info` and `env` in its
/// environment, its stdout and stderr appended to `log`. Panics when it cannot start.
pub fn spawn(env: &HashMap<String, String>, log: &Path) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("{e}"));
    let err = out.try_clone().unwrap_or_else(|e| panic!("{e}"));
    Command::new(env!("CARGO_BIN_EXE_cafe24-komoju"))
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
