//! Build script: rebuilds the crate when a migration is added (they are embedded), and,
//! for the tests: when `TEST_POSTGRES_URL` is set at build time the
//! PostgreSQL variants of the integration tests are compiled as ordinary tests (cfg
//! `test_postgres`); otherwise they are compiled `#[ignore]`d with the reason, so
//! `cargo test` reports them as ignored instead of passing without running.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(test_postgres)");
    println!("cargo::rerun-if-env-changed=TEST_POSTGRES_URL");
    println!("cargo::rerun-if-changed=build.rs");
    // The migrations are embedded (`embed_migrations!`): a new one must rebuild the crate.
    println!("cargo::rerun-if-changed=migrations");
    if std::env::var("TEST_POSTGRES_URL").is_ok_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=test_postgres");
    }
}
