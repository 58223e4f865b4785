//! Liveness and readiness (PROTOCOL.md §13) through the real server. The database
//! outage is in `processes.rs`, where the service runs as its own process.

use diesel::prelude::*;

use crate::both_backends;
use crate::helpers::*;

both_backends!(liveness_asks_nothing_readiness_checks_database_and_migrations);

async fn get_json(app: &TestApp, path: &str) -> (u16, serde_json::Value) {
    let resp = app.get(&format!("{}{path}", app.address)).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

async fn liveness_asks_nothing_readiness_checks_database_and_migrations(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(
        get_json(&app, "/health").await,
        (200, serde_json::json!({"status": "ok"}))
    );
    assert_eq!(
        get_json(&app, "/health/ready").await,
        (
            200,
            serde_json::json!({"status": "ok", "checks": {"database": "up", "migrations": "current"}})
        )
    );
    // A migration the database has not run (as after deploying a newer binary without
    // `migrate`): not ready, still alive.
    let forgotten = app
        .state
        .db
        .run(|c| {
            let latest: String = diesel::sql_query(
                "SELECT version FROM __diesel_schema_migrations ORDER BY version DESC LIMIT 1",
            )
            .get_result::<Version>(c)?
            .version;
            diesel::sql_query(format!(
                "DELETE FROM __diesel_schema_migrations WHERE version = '{latest}'"
            ))
            .execute(c)?;
            Ok(latest)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!forgotten.is_empty());
    assert_eq!(
        get_json(&app, "/health/ready").await,
        (
            503,
            serde_json::json!({"status": "degraded", "checks": {"database": "up", "migrations": "pending"}})
        )
    );
    assert_eq!(get_json(&app, "/health").await.0, 200);
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}
