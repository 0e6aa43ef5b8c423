//! The storage conformance suite of `echostats-core` against a MongoDB-wire server at
//! `ECHOSTATS_TEST_MONGO_URL` (read at run time; skipped when unset unless
//! `ECHOSTATS_REQUIRE_SERVICES` is set). Each test gets a database of its own, dropped
//! afterwards.

use echostats_store_mongo::MongoStore;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};

/// A store in its own database, dropped when the test ends.
pub struct Scoped {
    store: MongoStore,
    url: String,
}

impl Deref for Scoped {
    type Target = MongoStore;
    fn deref(&self) -> &MongoStore {
        &self.store
    }
}

impl Drop for Scoped {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.store.database().name().to_string());
        // Drop may run inside the test's runtime: use a thread with its own (and a client
        // of its own: a client's tasks live on the runtime that made it).
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let client = ::mongodb::Client::with_uri_str(&url).await?;
                client.database(&name).drop().await?;
                client.shutdown().await;
                Ok::<(), ::mongodb::error::Error>(())
            })
        })
        .join();
        if !matches!(done, Ok(Ok(()))) {
            eprintln!("could not drop a test database: {done:?}");
        }
    }
}

/// A fresh database name: process, counter and clock.
pub fn unique_db() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "t_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos()
    )
}

/// `base` (`mongodb://host:port[/db][?opts]`) with its database replaced by `db`.
pub fn with_db(base: &str, db: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (base, None),
    };
    let scheme_end = head.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = head[scheme_end..].find('/').map(|i| scheme_end + i).unwrap_or(head.len());
    let mut url = format!("{}/{db}", &head[..host_end]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

async fn mongo_store() -> Option<Scoped> {
    let base = echostats_core::conformance::service_url("ECHOSTATS_TEST_MONGO_URL")?;
    let url = with_db(&base, &unique_db());
    let store = MongoStore::open(&url).await.expect("open mongodb");
    Some(Scoped { store, url })
}

mod mongodb {
    echostats_core::conformance_tests!(super::mongo_store);
}
