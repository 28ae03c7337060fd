//! How to open a log, which database it is in, and its URL as messages show it.

use std::time::Duration;

/// The default log: an embedded SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://provenant.db";

/// How to open a log.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `postgres://…` or `sqlite://…`.
    pub url: String,
    /// Run pending migrations when opening, creating an SQLite file that is
    /// missing (the engine does; the auditor, which only reads, does not).
    pub migrate: bool,
    /// Connections in the pool.
    pub max_connections: u32,
    /// Chunks of committed events (at most 512 each) the feed holds for
    /// this log's tails before a tail that has not taken them reads the log
    /// instead (at least 1).
    pub feed_capacity: usize,
    /// PostgreSQL ends a session of this log that stays idle inside a
    /// transaction this long (`idle_in_transaction_session_timeout`): a
    /// writer frozen mid-append (SIGSTOP, a long pause) would otherwise hold
    /// the append lock, and the lease rows its append reads, for as long as
    /// it is frozen, and no other engine could append or take its leases
    /// over. Its transaction is rolled back: nothing of it is written.
    pub idle_in_transaction_timeout: std::time::Duration,
    /// PostgreSQL cancels a statement of this log that runs longer
    /// (`statement_timeout`; None: never). The engine sets one as a
    /// backstop: a writer frozen in the middle of sending an append (a
    /// `COPY` whose data stops coming is not idle) would otherwise hold the
    /// append lock until it wakes up.
    pub statement_timeout: Option<std::time::Duration>,
}

impl LogConfig {
    pub fn new(url: impl Into<String>) -> Self {
        LogConfig {
            url: url.into(),
            migrate: true,
            max_connections: 8,
            feed_capacity: crate::feed::DEFAULT_FEED_CAPACITY,
            idle_in_transaction_timeout: std::time::Duration::from_secs(10),
            statement_timeout: None,
        }
    }
}

/// Which database a log lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Postgres,
    Sqlite,
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::Postgres => "PostgreSQL",
            BackendKind::Sqlite => "embedded SQLite",
        })
    }
}

/// The URL without its password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return url.to_owned();
    };
    let mut changed = false;
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
        changed = true;
    }
    // libpq takes a password in the query too (`?password=`,
    // `?sslpassword=`).
    let secret =
        |k: &str| k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("sslpassword");
    if u.query_pairs().any(|(k, _)| secret(&k)) {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret(&k) {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
        changed = true;
    }
    if changed {
        u.to_string()
    } else {
        url.to_owned()
    }
}

/// How long a tail waits for a wake-up before it reads anyway: a safety net
/// for a notification lost with a connection, or a writer in another process
/// (or another `EventLog`) on the same SQLite file. It is not the way new
/// events are normally noticed.
pub(crate) const WAKE_FALLBACK: Duration = Duration::from_millis(500);
