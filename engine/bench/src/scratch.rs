//! What the benchmarks run in: the local servers they use by default, a
//! scratch database on a PostgreSQL server (dropped at the end), and their
//! progress bars. The tests use the same defaults and make their databases
//! the same way.

use anyhow::Context as _;
use indicatif::ProgressBar;
use provenant_log::redact_url;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The PostgreSQL server the benchmarks (and the tests) use when
/// `DATABASE_URL` does not say: the local one, as its package installs it.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The NATS server with JetStream the benchmarks (and the tests) use when
/// `NATS_URL` does not say.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// A bar of `len` steps labelled `label`.
pub fn progress(len: u64, label: &str) -> ProgressBar {
    let bar =
        provenant_engine::progress::bar(Some(len), "{msg:<28} {bar:30} {pos}/{len} ({per_sec})");
    bar.set_message(label.to_owned());
    bar
}

/// A scratch database on the server, dropped by [`Scratch::drop_database`].
#[derive(Debug, Clone)]
pub struct Scratch {
    pub server: String,
    pub name: String,
    pub url: String,
}

impl Scratch {
    /// A new database `<prefix>_<uuid>` on the server at `server`.
    pub async fn create(server: &str) -> anyhow::Result<Self> {
        Self::create_named(server, "provenant_bench").await
    }

    /// A new database named `<prefix>_<a fresh uuid>`; `prefix` is 1 to 32
    /// characters of `[a-z0-9_]` (it is part of SQL).
    pub async fn create_named(server: &str, prefix: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            (1..=32).contains(&prefix.len())
                && prefix
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "invalid scratch database prefix {prefix:?}: expected 1 to 32 characters of [a-z0-9_]"
        );
        let name = format!("{prefix}_{}", uuid::Uuid::now_v7().simple());
        let mut conn = PgConnection::connect(server)
            .await
            .with_context(|| format!("cannot connect to {}", redact_url(server)))?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .with_context(|| format!("cannot create the scratch database {name}"))?;
        let mut url = url::Url::parse(server).context("invalid database URL")?;
        url.set_path(&name);
        Ok(Scratch {
            server: server.to_owned(),
            name,
            url: url.to_string(),
        })
    }

    pub async fn drop_database(&self) {
        let Ok(mut conn) = PgConnection::connect(&self.server).await else {
            eprintln!("warning: could not drop the scratch database {}", self.name);
            return;
        };
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
        {
            eprintln!(
                "warning: could not drop the scratch database {}: {e}",
                self.name
            );
        }
    }
}

/// The head position of the log at `database_url` (opened without
/// migrating).
pub async fn log_head(database_url: &str) -> anyhow::Result<u64> {
    let log = provenant_log::EventLog::open(&provenant_log::LogConfig {
        migrate: false,
        ..provenant_log::LogConfig::new(database_url)
    })
    .await?;
    let head = log.head().await?.position;
    log.close().await;
    Ok(head)
}

/// Deletes a benchmark's streams (events, ticks, anchors); best effort.
pub async fn delete_streams(nats_url: &str, names: &provenant_engine::nats_names::NatsNames) {
    if let Ok(client) = async_nats::connect(nats_url).await {
        let js = async_nats::jetstream::new(client);
        let _ = js.delete_stream(names.events_stream()).await;
        let _ = js.delete_stream(names.ticks_stream()).await;
        let _ = js.delete_stream(names.anchors_stream()).await;
    }
}
