//! A fresh log per test on the real PostgreSQL server (a scratch database
//! made as the benchmarks make theirs) or in a temporary SQLite file,
//! removed in `Drop`.

use provenant_bench::scratch::{DEFAULT_POSTGRES_URL, Scratch};
use provenant_events::{Event, StreamName};
use provenant_log::{EventLog, LogConfig};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The server URL tests create their databases on.
pub fn postgres_server_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned())
}

/// Which log a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// A fresh, empty log location; removed when dropped.
pub struct TestLog {
    pub backend: Backend,
    pub url: String,
    guard: Guard,
}

enum Guard {
    Postgres(Scratch),
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
}

impl TestLog {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Postgres => Self::postgres().await,
            Backend::Sqlite => Self::sqlite(),
        }
    }

    /// A new database on the PostgreSQL server.
    pub async fn postgres() -> Self {
        let server = postgres_server_url();
        let scratch = Scratch::create_named(&server, "provenant_test")
            .await
            .unwrap_or_else(|e| panic!("cannot make a test database on {server}: {e:#}"));
        TestLog {
            backend: Backend::Postgres,
            url: scratch.url.clone(),
            guard: Guard::Postgres(scratch),
        }
    }

    /// A new SQLite file in a temporary directory.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("log.db").display());
        TestLog {
            backend: Backend::Sqlite,
            url,
            guard: Guard::Sqlite(dir),
        }
    }

    /// Opens (and migrates) the log with its own connection pool.
    pub async fn open(&self) -> EventLog {
        EventLog::open(&LogConfig::new(&self.url))
            .await
            .expect("open log")
    }

    /// Opens the log with a feed that holds `batches` committed batches.
    pub async fn open_with_feed(&self, batches: usize) -> EventLog {
        EventLog::open(&LogConfig {
            feed_capacity: batches,
            ..LogConfig::new(&self.url)
        })
        .await
        .expect("open log")
    }

    /// Waits until every standard projection has committed the log up to
    /// its head (they are eventually consistent: what a test reads from
    /// them must wait for this); the head.
    pub async fn projections_caught_up(&self) -> u64 {
        let log = self.open().await;
        let head = log.head().await.expect("read the head").position;
        let done = log
            .wait_for_projections(
                provenant_projections::names::ALL,
                head,
                std::time::Duration::from_secs(30),
            )
            .await
            .expect("read the projections");
        assert!(
            done,
            "the projections did not reach the head {head}: {:?}",
            log.projection_statuses().await
        );
        log.close().await;
        head
    }

    /// The PostgreSQL database of this log (None for SQLite).
    pub fn database_name(&self) -> Option<&str> {
        match &self.guard {
            Guard::Postgres(scratch) => Some(&scratch.name),
            Guard::Sqlite(_) => None,
        }
    }

    /// The events table's name in SQL.
    pub fn events_table(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => "provenant.events",
            Backend::Sqlite => "events",
        }
    }

    /// Runs SQL statements directly against the database.
    pub async fn sql(&self, sql: &str) -> Result<(), sqlx::Error> {
        let sql = sql.replace("{events}", self.events_table());
        match self.backend {
            Backend::Postgres => {
                let mut conn = PgConnection::connect(&self.url).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await?;
            }
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await?;
            }
        }
        Ok(())
    }

    /// Runs SQL with the immutability triggers out of the way, as someone
    /// tampering with the database by hand would.
    pub async fn tamper(&self, sql: &str) {
        let wrapped = match self.backend {
            Backend::Postgres => format!(
                "BEGIN; ALTER TABLE provenant.events DISABLE TRIGGER USER; {sql}; \
                 ALTER TABLE provenant.events ENABLE TRIGGER USER; COMMIT;"
            ),
            Backend::Sqlite => format!(
                "DROP TRIGGER events_refuse_update; DROP TRIGGER events_refuse_delete; {sql};"
            ),
        };
        self.sql(&wrapped)
            .await
            .unwrap_or_else(|e| panic!("tamper SQL failed: {e}\n{wrapped}"));
    }

    /// Inserts a fully formed event as a row, bypassing the log's writer.
    pub async fn insert_raw(&self, e: &provenant_events::Event) {
        use provenant_events::event::format_timestamp;
        let provenance = provenant_events::canonical::to_canonical_string(
            &serde_json::to_value(&e.provenance).unwrap(),
        );
        let payload = e.payload.text().to_owned();
        let sql = match self.backend {
            Backend::Postgres => {
                "INSERT INTO provenant.events VALUES ($1, $2::uuid, $3, $4, $5, $6, $7, $8, \
                 $9::timestamptz, $10::timestamptz, $11::json, $12::json, $13::int, $14, $15)"
            }
            Backend::Sqlite => {
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            }
        };
        macro_rules! bind_all {
            ($q:expr) => {
                $q.bind(e.position as i64)
                    .bind(e.event_id.to_string())
                    .bind(e.stream.as_str().to_owned())
                    .bind(e.stream_version as i64)
                    .bind(e.kind.as_str().to_owned())
                    .bind(e.plugin_id.as_ref().map(|p| p.to_string()))
                    .bind(e.world_id.as_ref().map(|p| p.to_string()))
                    .bind(e.session_id.as_ref().map(|p| p.to_string()))
                    .bind(format_timestamp(&e.occurred_at))
                    .bind(format_timestamp(&e.recorded_at))
                    .bind(provenance.clone())
                    .bind(payload.clone())
                    .bind(e.schema_version as i64)
                    .bind(e.prev_hash.0.to_vec())
                    .bind(e.hash.0.to_vec())
            };
        }
        match self.backend {
            Backend::Postgres => {
                let mut conn = PgConnection::connect(&self.url).await.unwrap();
                bind_all!(sqlx::query(sql))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                bind_all!(sqlx::query(sql))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }
}

impl Drop for TestLog {
    fn drop(&mut self) {
        if let Guard::Postgres(scratch) = &self.guard {
            let scratch = scratch.clone();
            on_own_runtime(async move {
                scratch.drop_database().await;
                Some(())
            });
        }
    }
}

/// Runs `cleanup` to its end on a thread and runtime of its own: `Drop`
/// runs inside the test's runtime, which cannot be blocked on.
pub fn on_own_runtime<T: Send + 'static>(
    cleanup: impl std::future::Future<Output = Option<T>> + Send + 'static,
) {
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?
            .block_on(cleanup)
    })
    .join();
}

/// A stream name for tests.
pub fn stream(name: &str) -> StreamName {
    StreamName::new(name).expect("valid stream name")
}

/// Every event of the log, in position order.
pub async fn all_events(log: &EventLog) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    loop {
        let after = out.last().map_or(0, |e| e.position);
        let page = log.read_forward(after, 5000).await.expect("read the log");
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// Runs `sql` on the PostgreSQL server (its `postgres` database); the first
/// column of the first row, as text.
pub async fn on_postgres_server(sql: &str) -> String {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::PgConnection::connect(&postgres_server_url())
        .await
        .expect("connect to the server");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    row.try_get::<i64, _>(0)
        .map(|v| v.to_string())
        .or_else(|_| row.try_get::<String, _>(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}
