//! Build script: only for the tests. When `TEST_POSTGRES_URL` is set at build time the
//! PostgreSQL variants of the integration tests are compiled as ordinary tests (cfg
//! `test_postgres`); otherwise they are compiled `#[ignore]`d with the reason, so
//! `cargo test` reports them as ignored instead of passing without running.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(test_postgres)");
    println!("cargo::rerun-if-env-changed=TEST_POSTGRES_URL");
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var("TEST_POSTGRES_URL").is_ok_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=test_postgres");
    }
}
