//! # echostats-store-mongo
//!
//! EchoStats storage on MongoDB through the official `mongodb` driver: one
//! [`MongoStore`] implements every storage trait of [`echostats_core::store`] with the
//! same answers as the in-memory reference store.
//!
//! ```no_run
//! # async fn demo() -> echostats_core::Result<()> {
//! let store = echostats_store_mongo::MongoStore::open("mongodb://127.0.0.1:27017/echostats").await?;
//! # Ok(()) }
//! ```
//!
//! Layout (collections of the database named in the URL path, `echostats` by default):
//!
//! * `plays`: one document per history entry, `n` its id (increasing per user, in
//!   insertion order; allocated in the batch's transaction from a per-user counter),
//!   the record under `r`, and derived fields for filters and groupings (epoch
//!   milliseconds `at`, kind `k`, normalised names `an`/`tn`, grouping keys
//!   `tk`/`ak`/`alk`/`sk`, match key `mk`). Unique on (user, kind, match key, time):
//!   the same play stored twice is refused by the server; the 60 s window itself is the
//!   insert plan's business.
//! * `rollup_days`: one document per user and UTC day, the 96 quarter-hour slots as
//!   BinData of [`RollupDay::encode_slots`], maintained by every insert batch in the
//!   batch's transaction.
//! * `users`, `tracks`, `artists` (catalog), `meta` (per-user rules and id counters),
//!   `user_tokens` (sealed Spotify tokens, by user id).
//! * `sync_jobs` and `api_logs`, which expire through TTL indexes after the retention
//!   period ([`DEFAULT_RETENTION`], [`MongoStore::open_with_retention`]).
//!
//! Item and show rankings are `$group` aggregations over the user's counted plays; an
//! item's name and artist are those of its first counted play (lowest id) and its
//! Spotify id that of the first counted play that has one, like the reference store.
//!
//! [`RollupDay::encode_slots`]: echostats_core::model::RollupDay::encode_slots

mod batch;
mod codec;
mod error;
mod ops;
mod store;

use crate::error::{MongoError, MongoResult};
use mongodb::bson::{doc, Document};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, Database, IndexModel};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A store on a MongoDB database.
#[derive(Clone)]
pub struct MongoStore {
    client: Client,
    db: Database,
    /// Per-user write locks of this process (batches of one user run one at a time).
    locks: Arc<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// How long finished sync jobs and API call logs are kept unless configured otherwise.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

impl std::fmt::Debug for MongoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoStore").field("database", &self.db.name()).finish_non_exhaustive()
    }
}

/// Collection names.
pub(crate) const PLAYS: &str = "plays";
pub(crate) const ROLLUPS: &str = "rollup_days";
pub(crate) const USERS: &str = "users";
pub(crate) const TRACKS: &str = "tracks";
pub(crate) const ARTISTS: &str = "artists";
pub(crate) const META: &str = "meta";
pub(crate) const TOKENS: &str = "user_tokens";
pub(crate) const JOBS: &str = "sync_jobs";
pub(crate) const API_LOGS: &str = "api_logs";

/// MongoDB's "an index of this name exists with other options" error codes
/// (IndexOptionsConflict, IndexKeySpecsConflict).
const INDEX_CONFLICT: &[i32] = &[85, 86];

impl MongoStore {
    /// Opens the database named in the path of `url` (`mongodb://host:port/dbname`,
    /// `mongodb+srv://...`; `echostats` when the URL names none) and creates the
    /// collections' indexes (idempotent).
    ///
    /// Errors: [`echostats_core::Error::InvalidInput`] for a URL that is not a MongoDB
    /// connection string, [`echostats_core::Error::BackendUnavailable`] when the server
    /// cannot be reached.
    pub async fn open(url: &str) -> echostats_core::Result<MongoStore> {
        Self::open_with_retention(url, DEFAULT_RETENTION).await
    }

    /// [`MongoStore::open`] with finished sync jobs and API logs expiring after
    /// `retention` (the TTL indexes are changed to it if they exist with another value).
    pub async fn open_with_retention(url: &str, retention: Duration) -> echostats_core::Result<MongoStore> {
        Self::open_inner(url, retention).await.map_err(MongoError::into_core)
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    async fn open_inner(url: &str, retention: Duration) -> MongoResult<MongoStore> {
        if !(url.starts_with("mongodb://") || url.starts_with("mongodb+srv://")) {
            return Err(MongoError::Url(format!("expected mongodb://HOST[:PORT]/DB, got {:?}", redact(url))));
        }
        let mut options = ClientOptions::parse(url).await.map_err(|e| match &*e.kind {
            mongodb::error::ErrorKind::InvalidArgument { message, .. } => MongoError::Url(message.clone()),
            _ => MongoError::Driver(e),
        })?;
        if !url.contains("serverSelectionTimeoutMS") {
            options.server_selection_timeout = Some(Duration::from_secs(10));
        }
        // The driver also bounds its server monitor's heartbeats by the connect timeout: a
        // short one drops a busy server in the middle of a long import (a 5 s value did,
        // on a loaded test server). 30 s, unless the URL says otherwise.
        if !url.contains("connectTimeoutMS") {
            options.connect_timeout = Some(Duration::from_secs(30));
        }
        options.app_name.get_or_insert_with(|| "echostats".to_string());
        let name = options.default_database.clone().filter(|d| !d.is_empty()).unwrap_or_else(|| "echostats".into());
        let client = Client::with_options(options)?;
        let db = client.database(&name);
        let store = MongoStore { client, db, locks: Arc::default() };
        store.create_indexes().await?;
        store.create_ttl_index(JOBS, "expire_from", retention).await?;
        store.create_ttl_index(API_LOGS, "ts", retention).await?;
        Ok(store)
    }

    pub(crate) fn coll(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }

    async fn create_indexes(&self) -> MongoResult<()> {
        let index = |keys: Document, name: &str, unique: bool| {
            IndexModel::builder()
                .keys(keys)
                .options(IndexOptions::builder().name(name.to_string()).unique(unique.then_some(true)).build())
                .build()
        };
        self.coll(PLAYS)
            .create_indexes([
                // Exact duplicates: the same play cannot be stored twice.
                index(doc! { "u": 1, "k": 1, "mk": 1, "at": 1 }, "same_play", true),
                // History by user and time (newest first, ties by id); duplicate lookups.
                index(doc! { "u": 1, "at": 1, "n": 1 }, "user_time", false),
                // Play ids (per user, in insertion order).
                index(doc! { "u": 1, "n": 1 }, "user_id", true),
                // History filters on normalised names.
                index(doc! { "u": 1, "an": 1, "at": 1 }, "user_artist_time", false),
                index(doc! { "u": 1, "tn": 1, "at": 1 }, "user_track_time", false),
                // Rankings: the user's plays by kind and time.
                index(doc! { "u": 1, "k": 1, "at": 1 }, "user_kind_time", false),
            ])
            .await?;
        self.coll(ROLLUPS).create_index(index(doc! { "u": 1, "d": 1 }, "user_day", true)).await?;
        self.coll(ARTISTS).create_index(index(doc! { "spotify_id": 1 }, "spotify_id", false)).await?;
        let exclusive = IndexOptions::builder().name("one_active".to_string()).unique(true).sparse(true).build();
        self.coll(JOBS)
            .create_indexes([
                // Listing, newest first.
                index(doc! { "u": 1, "created": -1, "_id": -1 }, "user_created", false),
                // Restart recovery and expiry.
                index(doc! { "status": 1, "created": 1 }, "status_created", false),
                // One active exclusive job per user and type (`active` only set then).
                IndexModel::builder().keys(doc! { "active": 1 }).options(exclusive).build(),
            ])
            .await?;
        self.coll(API_LOGS)
            .create_indexes([
                index(doc! { "u": 1, "at": -1, "_id": -1 }, "user_time", false),
                index(doc! { "at": 1 }, "time", false),
            ])
            .await?;
        Ok(())
    }

    /// A TTL index on the date field `field`, or the existing one set to `retention`.
    async fn create_ttl_index(&self, coll: &str, field: &str, retention: Duration) -> MongoResult<()> {
        let name = format!("expire_{field}");
        let ttl = IndexModel::builder()
            .keys(doc! { field: 1 })
            .options(IndexOptions::builder().name(name.clone()).expire_after(retention).build())
            .build();
        match self.coll(coll).create_index(ttl).await {
            Ok(_) => Ok(()),
            Err(e) if matches!(&*e.kind, mongodb::error::ErrorKind::Command(c) if INDEX_CONFLICT.contains(&c.code)) => {
                let seconds = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
                let command = doc! { "collMod": coll, "index": { "name": name, "expireAfterSeconds": seconds } };
                self.db.run_command(command).await?;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// This process's write lock of `user_id`.
    pub(crate) fn user_lock(&self, user_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(user_id.to_string()).or_default().clone()
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}
