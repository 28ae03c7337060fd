//! PostgreSQL migrations: run only when one is pending, so that an engine
//! whose role may not change the schema starts on a log its owner
//! migrated (reading which are applied needs only SELECT on
//! `_sqlx_migrations`).

use sqlx::PgPool;

use crate::error::LogError;

/// Runs the migrations not applied yet; a role without the privileges
/// they need gets [`LogError::MigrationPrivileges`].
pub async fn run(pool: &PgPool, url: &str) -> Result<(), LogError> {
    let migrator = sqlx::migrate!("../../migrations/postgres");
    if applied(pool, &migrator).await {
        return Ok(());
    }
    migrator.run(pool).await.map_err(|e| {
        use sqlx::migrate::MigrateError::{Execute, ExecuteMigration};
        let denied = |db: &sqlx::Error| {
            db.as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c == "42501")
        };
        match &e {
            Execute(db) | ExecuteMigration(db, _) if denied(db) => LogError::MigrationPrivileges {
                url: url.to_owned(),
                source: e,
            },
            _ => e.into(),
        }
    })?;
    Ok(())
}

/// Whether exactly this build's migrations are applied, each with the
/// same checksum; false otherwise, or when that cannot be read: the
/// migrator then runs and says what is wrong (a migration changed since it
/// was applied, or a schema newer than this build).
async fn applied(pool: &PgPool, migrator: &sqlx::migrate::Migrator) -> bool {
    let applied: Result<Vec<(i64, Vec<u8>)>, _> = sqlx::query_as(
        "SELECT version, checksum FROM _sqlx_migrations WHERE success ORDER BY version",
    )
    .fetch_all(pool)
    .await;
    let Ok(applied) = applied else {
        return false;
    };
    let mut ours: Vec<(i64, &[u8])> = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| (m.version, m.checksum.as_ref()))
        .collect();
    ours.sort_unstable();
    ours.len() == applied.len()
        && ours
            .iter()
            .zip(&applied)
            .all(|((v, c), (av, ac))| v == av && *c == ac.as_slice())
}
