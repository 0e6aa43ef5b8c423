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

/// Collections get their indexes on open, TTL indexes expire jobs and logs after the
/// configured retention, and reopening with another retention changes it in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_and_retention() {
    use ::mongodb::IndexModel;
    use futures_util::TryStreamExt;
    use std::time::Duration;
    let Some(base) = echostats_core::conformance::service_url("ECHOSTATS_TEST_MONGO_URL") else { return };
    let url = with_db(&base, &unique_db());
    let day = Duration::from_secs(24 * 3600);
    let store = Scoped { store: MongoStore::open_with_retention(&url, day).await.unwrap(), url: url.clone() };
    let indexes = |coll: &'static str| {
        let db = store.database().clone();
        async move {
            let models: Vec<IndexModel> = db
                .collection::<::mongodb::bson::Document>(coll)
                .list_indexes()
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            models
                .into_iter()
                .filter_map(|m| m.options.map(|o| (o.name.unwrap_or_default(), o.expire_after)))
                .collect::<Vec<(String, Option<Duration>)>>()
        }
    };
    let ttl = |all: &[(String, Option<Duration>)], name: &str| all.iter().find(|i| i.0 == name).and_then(|i| i.1);
    assert_eq!(ttl(&indexes("sync_jobs").await, "expire_expire_from"), Some(day));
    assert_eq!(ttl(&indexes("api_logs").await, "expire_ts"), Some(day));
    // Opening again is idempotent; another retention replaces the TTL.
    MongoStore::open_with_retention(&url, day).await.unwrap();
    MongoStore::open_with_retention(&url, 2 * day).await.unwrap();
    assert_eq!(ttl(&indexes("api_logs").await, "expire_ts"), Some(2 * day));
    let plays: Vec<String> = indexes("plays").await.into_iter().map(|i| i.0).collect();
    for expected in ["same_play", "user_time", "user_id", "user_artist_time", "user_track_time", "user_kind_time"] {
        assert!(plays.contains(&expected.to_string()), "plays index {expected} in {plays:?}");
    }
    assert!(indexes("rollup_days").await.iter().any(|i| i.0 == "user_day"));
    assert!(indexes("sync_jobs").await.iter().any(|i| i.0 == "one_active"));
}
