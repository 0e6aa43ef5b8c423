//! # echostats-store-sql
//!
//! EchoStats storage on SQLite (the embedded default) and PostgreSQL, through the sqlx
//! `Any` driver: one [`SqlStore`] implements every storage trait of
//! [`echostats_core::store`] with the same answers as the in-memory reference store.
//!
//! ```no_run
//! # async fn demo() -> echostats_core::Result<()> {
//! let store = echostats_store_sql::SqlStore::open("sqlite://data/echostats.db").await?;
//! # Ok(()) }
//! ```
//!
//! Layout: plays in `plays`, each pointing at its item in `play_items` (what was played:
//! names, URIs and the keys derived from them, one row per distinct item, shared by all
//! users); the `play_rows` view joins them back into whole entries. Daily rollups in
//! `rollup_days` (96 quarter-hour slots, [`RollupDay::encode_slots`]), all-time item
//! totals in `item_totals`; both aggregates are maintained by every insert batch in the
//! batch's transaction. Timestamps are stored as epoch milliseconds.
//!
//! [`RollupDay::encode_slots`]: echostats_core::model::RollupDay::encode_slots

mod batch;
mod codec;
mod error;
mod items;
mod ops;
mod play_items;
pub mod sqlite_allocator;
mod sqlite_bulk;
mod store;

use crate::error::{SqlError, SqlResult};
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::AnyPool;
use sqlx::Executor;
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The SQL dialect behind a [`SqlStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite (file or in-memory).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A store on SQLite or PostgreSQL.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
    /// SQLite files: the background WAL checkpointer (see [`Checkpointer`]).
    checkpointer: Option<Arc<Checkpointer>>,
    /// Item ids known to be committed, lent to one batch at a time ([`play_items::CommittedItems`]).
    committed_items: play_items::CommittedItems,
}

/// How often the checkpointer runs when no import wakes it.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Checkpoints the SQLite write-ahead log from a connection of its own, in the background.
///
/// SQLite's automatic checkpoint runs inside the commit of whichever connection crosses
/// the threshold, so during an import the writer itself copied the log back into the
/// database after nearly every file: about a third of the import's time, on the one
/// thread that cannot be parallelised. Connections therefore run with
/// `wal_autocheckpoint=0`, and this task does `PRAGMA wal_checkpoint(PASSIVE)` (which
/// never blocks readers or the writer) on another thread: after every committed batch,
/// and every few seconds for the other writes. Dropping the last handle stops it.
struct Checkpointer {
    wake: Arc<tokio::sync::Notify>,
    /// Held while a checkpoint runs. [`SqlStore::close`] takes it for the final
    /// checkpoint: a TRUNCATE checkpoint beside a running one is blocked, and an import
    /// then left its last few hundred MB of log behind for the next process to copy.
    running: Arc<tokio::sync::Mutex<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Checkpointer {
    fn spawn(pool: AnyPool) -> Self {
        let wake = Arc::new(tokio::sync::Notify::new());
        let woken = wake.clone();
        let running = Arc::new(tokio::sync::Mutex::new(()));
        let held = running.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = woken.notified() => {}
                    () = tokio::time::sleep(CHECKPOINT_EVERY) => {}
                }
                let _running = held.lock().await;
                if pool.is_closed() {
                    return;
                }
                if let Err(e) = pool.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
                    tracing::debug!(error = %e, "WAL checkpoint failed; retrying later");
                }
            }
        });
        Checkpointer { wake, running, task }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore").field("dialect", &self.dialect).finish_non_exhaustive()
    }
}

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/sqlite/0001_init.sql")),
    (2, "ops", include_str!("../migrations/sqlite/0002_ops.sql")),
    (3, "play items", include_str!("../migrations/sqlite/0003_play_items.sql")),
    (4, "no item name indexes", include_str!("../migrations/sqlite/0004_no_item_name_indexes.sql")),
    (5, "play anchor", include_str!("../migrations/sqlite/0005_play_anchor.sql")),
    (6, "widest window", include_str!("../migrations/sqlite/0006_widest_window.sql")),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/postgres/0001_init.sql")),
    (2, "ops", include_str!("../migrations/postgres/0002_ops.sql")),
    (3, "play items", include_str!("../migrations/postgres/0003_play_items.sql")),
    (4, "no item name indexes", include_str!("../migrations/postgres/0004_no_item_name_indexes.sql")),
    (5, "play anchor", include_str!("../migrations/postgres/0005_play_anchor.sql")),
    (6, "widest window", include_str!("../migrations/postgres/0006_widest_window.sql")),
];

/// The migrations of one dialect, embedded in the binary (same checksums as
/// `sqlx::migrate!` would compute, so `sqlx-cli` agrees with them).
#[derive(Debug)]
struct Embedded(&'static [(i64, &'static str, &'static str)]);

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, sqlx::error::BoxDynError>> + Send + 'static>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// `wal_autocheckpoint=0`: the [`Checkpointer`] does it, off the writer's thread.
/// `journal_size_limit`: a log that grew during a large import shrinks back to 64 MiB the
/// next time it restarts.
/// `cache_size`: 8 MiB per connection. 16 MiB made no report faster (the OS caches the
/// file too) and took an import's memory ~30 MB higher once the caches had filled.
/// `page_size` (only takes effect on a new, empty database, so it comes first): 16 KiB
/// pages instead of 4 KiB write a large import in a quarter of the log frames and
/// system calls, and keep the B-trees shallower.
const SQLITE_PRAGMAS: &str =
    "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000; \
     PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY; PRAGMA cache_size=-8192; PRAGMA wal_autocheckpoint=0; \
     PRAGMA journal_size_limit=67108864;";

impl SqlStore {
    /// Opens (creating and migrating as needed) the database at `url`:
    ///
    /// * `sqlite://path/to/file.db`, `sqlite:file.db` (file and parent directories are
    ///   created on first use unless the URL sets `mode=`), `sqlite::memory:` (a private
    ///   in-memory database, one connection), with SQLite URL parameters (`mode`, `cache`,
    ///   `immutable`, `vfs`);
    /// * `postgres://` / `postgresql://` URLs, with libpq-style parameters and an extra
    ///   `schema=NAME` parameter: the schema is created if missing and used as the
    ///   search path of every connection.
    ///
    /// Errors: [`echostats_core::Error::InvalidInput`] for an unsupported URL,
    /// [`echostats_core::Error::BackendUnavailable`] when the server cannot be reached.
    pub async fn open(url: &str) -> echostats_core::Result<SqlStore> {
        let backend = if url.starts_with("sqlite:") { "sqlite" } else { "postgres" };
        Self::open_inner(url).await.map_err(|e| e.into_core(backend))
    }

    /// Opens a PostgreSQL database using (and creating if missing) `schema`.
    pub async fn open_postgres_schema(url: &str, schema: &str) -> echostats_core::Result<SqlStore> {
        Self::open_postgres(url, Some(schema.to_string())).await.map_err(|e| e.into_core("postgres"))
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The connection pool (for tools and tests; the schema is this crate's business).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes every connection (waits for checked-out connections to come back). A
    /// SQLite file is checkpointed first, so that it is complete without its log.
    pub async fn close(&self) {
        // Held until the pool is closed, so that no background checkpoint starts beside
        // the final one.
        let background_checkpoint = match &self.checkpointer {
            Some(c) => Some(c.running.lock().await),
            None => None,
        };
        if background_checkpoint.is_some() && !self.pool.is_closed() {
            // One row: (1 if blocked, frames in the log, frames copied back).
            let checkpoint = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(TRUNCATE)");
            match checkpoint.fetch_one(&self.pool).await {
                Ok((0, _, _)) => {}
                Ok((_, log, copied)) => tracing::warn!(
                    log_frames = log,
                    copied_frames = copied,
                    "final WAL checkpoint blocked by another connection: the database file needs its -wal file"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "final WAL checkpoint failed: the database file needs its -wal file")
                }
            }
        }
        self.pool.close().await;
    }

    /// What wakes the WAL checkpointer (SQLite files only).
    pub(crate) fn checkpoint_waker(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.checkpointer.as_ref().map(|c| c.wake.clone())
    }

    async fn open_inner(url: &str) -> SqlResult<SqlStore> {
        if url.starts_with("sqlite:") {
            Self::open_sqlite(url).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let (url, schema) = split_schema_param(url)?;
            Self::open_postgres(&url, schema).await
        } else {
            Err(SqlError::Url(format!(
                "unsupported database URL {:?}: expected sqlite://... or postgres://...",
                redact(url)
            )))
        }
    }

    async fn open_sqlite(url: &str) -> SqlResult<SqlStore> {
        let (pool, memory) = sqlite_pool(url).await?;
        if memory {
            // Another connection to `:memory:` would be another database.
            Migrator::new(Embedded(SQLITE_MIGRATIONS)).await?.run(&pool).await?;
        } else {
            let (mut conn, before) = migrate(&pool, Some(SQLITE_PRAGMAS), SQLITE_MIGRATIONS).await?;
            if before.is_some_and(|v| v < PLAY_ITEMS_MIGRATION) {
                // The wide plays table was copied into a narrow one: give its pages back to
                // the file system (a database of a million plays shrinks by ~60%). The copy
                // VACUUM makes goes to a temporary file, not memory (`temp_store`).
                conn.execute("PRAGMA temp_store=FILE; VACUUM;").await?;
            }
            sqlx::Connection::close(conn).await?;
        }
        let checkpointer = (!memory).then(|| Arc::new(Checkpointer::spawn(pool.clone())));
        Ok(SqlStore { pool, dialect: Dialect::Sqlite, checkpointer, committed_items: Default::default() })
    }

    async fn open_postgres(url: &str, schema: Option<String>) -> SqlResult<SqlStore> {
        let (pool, setup) = postgres_pool(url, schema).await?;
        let (conn, _) = migrate(&pool, setup.as_deref(), POSTGRES_MIGRATIONS).await?;
        sqlx::Connection::close(conn).await?;
        Ok(SqlStore { pool, dialect: Dialect::Postgres, checkpointer: None, committed_items: Default::default() })
    }
}

/// The migration that moved item fields from `plays` to `play_items`.
const PLAY_ITEMS_MIGRATION: i64 = 3;

/// Runs `migrations` on a connection of its own, set up like the pool's (`setup`: what
/// the pool runs on each new connection) but without sqlx's slow-statement warnings: a
/// migration of a large history takes seconds by design, and each warning would print
/// the migration's whole SQL. Returns the connection and the last migration applied
/// before ([`applied_migration`]).
async fn migrate(
    pool: &AnyPool,
    setup: Option<&str>,
    migrations: &'static [(i64, &'static str, &'static str)],
) -> SqlResult<(sqlx::AnyConnection, Option<i64>)> {
    use sqlx::ConnectOptions;
    let options =
        (*pool.connect_options()).clone().log_slow_statements(log::LevelFilter::Off, std::time::Duration::ZERO);
    let mut conn = options.connect().await?;
    if let Some(setup) = setup {
        conn.execute(setup).await?;
    }
    let before = applied_migration(&mut conn).await;
    if before.is_some_and(|v| v < PLAY_ITEMS_MIGRATION) {
        tracing::warn!("moving the stored plays to the play_items layout, once (5-10 s per million plays)");
    }
    // `run` takes any `Acquire`, whose lifetime bounds make this future not `Send` for
    // every caller (the Python module's); sqlx offers `run_direct` for that.
    Migrator::new(Embedded(migrations)).await?.run_direct(&mut conn).await?;
    Ok((conn, before))
}

/// The last migration applied to the database; `None` for a new database.
async fn applied_migration(conn: &mut sqlx::AnyConnection) -> Option<i64> {
    let last = sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(version) FROM _sqlx_migrations WHERE success");
    // No such table: a new database.
    last.fetch_one(conn).await.ok().flatten()
}

/// A pool on the SQLite database at `url`, not migrated, and whether it is in memory.
async fn sqlite_pool(url: &str) -> SqlResult<(AnyPool, bool)> {
    sqlx::any::install_default_drivers();
    sqlite_bulk::register().map_err(SqlError::Setup)?;
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or_default();
    let (path, params) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let has_mode = params.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("mode=")));
    let memory =
        path.is_empty() || path == ":memory:" || params.is_some_and(|q| q.split('&').any(|kv| kv == "mode=memory"));
    let mut url = if path.is_empty() { "sqlite::memory:".to_string() } else { url.to_string() };
    if !memory {
        let file = std::path::PathBuf::from(percent_decode(path, false)?);
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        if !has_mode {
            url.push(if params.is_some() { '&' } else { '?' });
            url.push_str("mode=rwc");
        }
    }
    let mut options = AnyPoolOptions::new().after_connect(|conn, _meta| {
        Box::pin(async move {
            conn.execute(SQLITE_PRAGMAS).await?;
            Ok(())
        })
    });
    options = if memory {
        // Every connection to `:memory:` is a database of its own: keep exactly one,
        // forever.
        options.max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None)
    } else {
        options.max_connections(8)
    };
    Ok((options.connect(&url).await?, memory))
}

/// A pool on the PostgreSQL database at `url` (in `schema`, created if missing), not
/// migrated, and what it runs on each new connection.
async fn postgres_pool(url: &str, schema: Option<String>) -> SqlResult<(AnyPool, Option<String>)> {
    sqlx::any::install_default_drivers();
    let schema = schema.map(|s| quote_ident(&s)).transpose()?;
    // One direct connection first: fails fast when the server is down (the pool would
    // retry until its acquire timeout), and creates the schema.
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url).await?;
    if let Some(schema) = &schema {
        conn.execute(&*format!("CREATE SCHEMA IF NOT EXISTS {schema}")).await?;
    }
    sqlx::Connection::close(conn).await?;
    let mut options = AnyPoolOptions::new().max_connections(10);
    let setup = schema.map(|schema| format!("SET search_path TO {schema}"));
    if let Some(set) = setup.clone() {
        options = options.after_connect(move |conn, _meta| {
            let set = set.clone();
            Box::pin(async move {
                conn.execute(&*set).await?;
                Ok(())
            })
        });
    }
    Ok((options.connect(url).await?, setup))
}

/// Removes our own `schema=NAME` parameter from a PostgreSQL URL.
fn split_schema_param(url: &str) -> SqlResult<(String, Option<String>)> {
    let Some((base, query)) = url.split_once('?') else { return Ok((url.to_string(), None)) };
    let mut schema = None;
    let mut kept = Vec::new();
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        match kv.strip_prefix("schema=") {
            Some(v) => schema = Some(percent_decode(v, true)?),
            None => kept.push(kv),
        }
    }
    let url = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    Ok((url, schema.filter(|s| !s.is_empty())))
}

/// Decodes `%XX` escapes (and `+` as space in query values).
fn percent_decode(s: &str, plus_is_space: bool) -> SqlResult<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        if plus_is_space && bytes[i] == b'+' {
            out.push(b' ');
        } else {
            out.push(bytes[i]);
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| SqlError::Url("URL is not valid UTF-8 once decoded".into()))
}

fn quote_ident(name: &str) -> SqlResult<String> {
    if name.is_empty() || name.len() > 63 || name.contains('\0') {
        return Err(SqlError::Url(format!("invalid schema name {name:?}")));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests;
