//! The storage conformance suite of `echostats-core`, on SQLite (a fresh temporary file
//! per test) and PostgreSQL (a fresh schema per test in the database at
//! `ECHOSTATS_TEST_POSTGRES_URL`, dropped afterwards; skipped when unset).

use echostats_store_sql::SqlStore;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};

/// A store in its own namespace, removed when dropped.
pub struct Scoped {
    store: SqlStore,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Schema { url: String, schema: String },
}

impl Deref for Scoped {
    type Target = SqlStore;
    fn deref(&self) -> &SqlStore {
        &self.store
    }
}

impl Drop for Scoped {
    fn drop(&mut self) {
        if let Cleanup::Schema { url, schema } = &self.cleanup {
            let (url, name) = (url.clone(), schema.clone());
            // Drop may run inside the test's runtime: use a thread with its own.
            let done = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(async move {
                    use sqlx::{Connection, Executor};
                    sqlx::any::install_default_drivers();
                    let mut conn = sqlx::AnyConnection::connect(&url).await?;
                    conn.execute(&*format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE")).await?;
                    conn.close().await
                })
            })
            .join();
            if !matches!(done, Ok(Ok(()))) {
                eprintln!("could not drop test schema {schema}: {done:?}");
            }
        }
    }
}

async fn sqlite_store() -> Option<Scoped> {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("echostats.db").display());
    let store = SqlStore::open(&url).await.expect("open sqlite");
    Some(Scoped { store, cleanup: Cleanup::Dir(dir) })
}

async fn postgres_store() -> Option<Scoped> {
    let url = echostats_core::conformance::service_url("ECHOSTATS_TEST_POSTGRES_URL")?;
    static N: AtomicU64 = AtomicU64::new(0);
    let schema = format!(
        "t_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos()
    );
    let store = SqlStore::open_postgres_schema(&url, &schema).await.expect("open postgres");
    Some(Scoped { store, cleanup: Cleanup::Schema { url, schema } })
}

mod sqlite {
    echostats_core::conformance_tests!(super::sqlite_store);
}

mod postgres {
    echostats_core::conformance_tests!(super::postgres_store);
}
