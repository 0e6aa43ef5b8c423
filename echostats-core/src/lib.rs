//! # echostats-core
//!
//! The storage-agnostic heart of EchoStats, a self-hosted Spotify listening-statistics
//! engine: the domain model, the Spotify export parser, the play rules, the analytics
//! engine and the storage traits every backend implements. It knows no database and no
//! web framework; stores (`echostats-store-sql`, ...) and front ends depend on it.
//!
//! ```no_run
//! # async fn demo(store: &dyn echostats_core::store::Store) -> echostats_core::Result<()> {
//! use echostats_core::{analytics::{Period, OverviewRequest}, ingest::ImportOptions};
//! let summary = echostats_core::ingest::import_paths(store, "local", &["my_spotify_data.zip".into()], &ImportOptions::default(), None).await?;
//! let overview = echostats_core::analytics::overview(store, "local", &OverviewRequest::new(Period::AllTime)).await?;
//! println!("{} plays, {} h", overview.total_tracks_played, overview.total_hours);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod analytics;
pub mod error;
pub mod export;
pub mod import;
pub mod ingest;
pub mod model;
pub mod rules;
#[cfg(feature = "sample")]
pub mod sample;
pub mod spotify;
pub mod store;
pub mod sync;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use error::{Error, Result};
pub use model::*;
pub use rules::PlayRules;
