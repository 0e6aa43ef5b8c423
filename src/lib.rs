//! # echostats
//!
//! Self-hosted Spotify listening statistics, as a library: the core (model, import,
//! analytics, storage traits) re-exported, plus [`open_store`], which picks a storage
//! backend from a URL at run time.
//!
//! ```no_run
//! # async fn demo() -> echostats::Result<()> {
//! use echostats::analytics::{overview, OverviewRequest, Period};
//! let store = echostats::open_store("sqlite://echostats.db").await?;
//! let o = overview(&*store, "local", &OverviewRequest::new(Period::Year)).await?;
//! println!("{} plays this year", o.total_tracks_played);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub use echostats_core::*;

pub use echostats_store_sql::sqlite_allocator;

use echostats_core::store::{MemoryStore, Store};
use std::sync::Arc;

/// Opens a store from a URL:
/// - `sqlite://path/to/file.db` (created on first use), `sqlite::memory:`
/// - `postgres://user@host:5432/db` (also `postgresql://`)
/// - `mongodb://host:27017/db` (also `mongodb+srv://`; database `echostats` when the URL
///   names none)
/// - `memory://` (the in-process reference store; nothing persists)
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>> {
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
    match scheme {
        "sqlite" | "postgres" | "postgresql" => Ok(Arc::new(echostats_store_sql::SqlStore::open(url).await?)),
        "memory" => Ok(Arc::new(MemoryStore::new())),
        "mongodb" | "mongodb+srv" => Ok(Arc::new(echostats_store_mongo::MongoStore::open(url).await?)),
        _ => Err(Error::invalid(format!(
            "unsupported database URL {url:?}: expected sqlite://FILE, postgres://..., mongodb://..., or memory://"
        ))),
    }
}
