//! The native `Store`: every method releases the GIL while Rust works.

use crate::errors::{invalid, to_py};
use crate::summary::ImportSummary;
use crate::{block_on, table, tables};
use chrono::{DateTime, Utc};
use echostats::analytics::{self, parse_tz, OverviewRequest, Period, TopEntry};
use echostats::ingest::{import_paths, ImportOptions};
use echostats::rules::normalize_name;
use echostats::store::{ItemKind, Store as CoreStore, TimeWindow};
use pyo3::prelude::*;
use pyo3_arrow::PyTable;
use std::path::PathBuf;
use std::sync::Arc;

/// Plays read (and turned into one Arrow record batch) at a time by `history`.
const HISTORY_CHUNK: usize = 65_536;

/// A store opened from a URL.
#[pyclass(frozen, module = "echostats._echostats", name = "Store")]
pub struct Store {
    pub(crate) inner: Arc<dyn CoreStore>,
}

fn period(py: Python<'_>, name: &str) -> PyResult<Period> {
    name.parse::<Period>().map_err(|e| to_py(py, e))
}

fn zone(py: Python<'_>, name: &str) -> PyResult<chrono_tz::Tz> {
    parse_tz(name).map_err(|e| to_py(py, e))
}

/// Fails with NotFound when the user does not exist, so that a typo in a user id is an
/// error rather than an empty result.
async fn require_user(store: &dyn CoreStore, user: &str) -> echostats::Result<()> {
    store.user(user).await.map(|_| ())
}

impl Store {
    fn top(&self, py: Python<'_>, kind: ItemKind, period_name: &str, limit: usize, user: &str) -> PyResult<String> {
        let p = period(py, period_name)?;
        if limit == 0 {
            return Err(invalid(py, "limit must be at least 1"));
        }
        let store = self.inner.clone();
        let ranking = block_on(py, async move {
            require_user(&*store, user).await?;
            analytics::top_items(&*store, user, kind, p, Utc::now(), limit).await
        })
        .map_err(|e| to_py(py, e))?;
        let entries: Vec<TopEntry> = ranking
            .items
            .into_iter()
            .enumerate()
            .map(|(i, it)| TopEntry {
                rank: i as u32 + 1,
                name: it.name,
                play_count: it.play_count,
                total_ms: it.total_ms,
                spotify_id: it.spotify_id,
                artist_name: it.artist_name,
                image_url: None,
            })
            .collect();
        serde_json::to_string(&entries).map_err(|e| invalid(py, e.to_string()))
    }
}

#[pymethods]
impl Store {
    /// `sqlite`, `postgres`, `memory`, ...
    #[getter]
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn __repr__(&self) -> String {
        format!("<echostats.Store backend={:?}>", self.inner.backend())
    }

    /// Finishes background work (a SQLite file's log checkpoint, so that the file is
    /// complete on its own) and closes the connections.
    fn close(&self, py: Python<'_>) {
        let store = self.inner.clone();
        block_on(py, async move { store.close().await });
    }

    /// Imports an export (a .json file, a folder, or the zip as downloaded).
    #[pyo3(signature = (path, user = "local"))]
    fn import_export(&self, py: Python<'_>, path: PathBuf, user: &str) -> PyResult<ImportSummary> {
        let store = self.inner.clone();
        let summary =
            block_on(py, async move { import_paths(&*store, user, &[path], &ImportOptions::default(), None).await })
                .map_err(|e| to_py(py, e))?;
        Ok(summary.into())
    }

    /// Every stored entry of the user (in `[start, end)`; by artist), oldest first, as
    /// an Arrow table.
    #[pyo3(signature = (user = "local", start = None, end = None, artist = None))]
    fn history(
        &self,
        py: Python<'_>,
        user: &str,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
        artist: Option<&str>,
    ) -> PyResult<PyTable> {
        // The store filters by time, also with one side open: `history(start=...)` reads
        // only the plays from `start` on.
        let window = TimeWindow::open_ended(start, end)
            .map_err(|w| invalid(py, format!("start ({}) must be before end ({})", w.start, w.end)))?;
        let store = self.inner.clone();
        let artist_key = artist.map(normalize_name);
        let batches = block_on(py, async move {
            require_user(&*store, user).await?;
            let keep = |r: &echostats::PlayRecord| {
                artist_key.as_ref().is_none_or(|k| r.artist_name.as_deref().is_some_and(|a| normalize_name(a) == *k))
            };
            // A record batch per chunk, as the store reads them: the entries of a long
            // history are never all in memory at once, only their Arrow columns.
            let mut batches = Vec::new();
            store
                .plays_chunked(user, window, HISTORY_CHUNK, &mut |entries| {
                    let kept: Vec<&echostats::PlayRecord> =
                        entries.iter().map(|e| &e.record).filter(|r| keep(r)).collect();
                    if !kept.is_empty() {
                        batches.push(
                            tables::plays_batch(kept.into_iter())
                                .map_err(|e| echostats::Error::invalid(e.to_string()))?,
                        );
                    }
                    Ok(())
                })
                .await?;
            Ok(batches)
        })
        .map_err(|e| to_py(py, e))?;
        PyTable::try_new(batches, tables::plays_schema())
    }

    /// The overview of a period, as JSON (the Python layer makes dataclasses of it).
    #[pyo3(signature = (period = "year", tz = "UTC", user = "local", top_limit = 10))]
    fn overview_json(&self, py: Python<'_>, period: &str, tz: &str, user: &str, top_limit: usize) -> PyResult<String> {
        let req = OverviewRequest { tz: zone(py, tz)?, top_limit, ..OverviewRequest::new(self::period(py, period)?) };
        let store = self.inner.clone();
        let o = block_on(py, async move {
            require_user(&*store, user).await?;
            analytics::overview(&*store, user, &req).await
        })
        .map_err(|e| to_py(py, e))?;
        serde_json::to_string(&o).map_err(|e| invalid(py, e.to_string()))
    }

    /// Top artists of a period, as JSON (a list of top entries).
    #[pyo3(signature = (period = "year", limit = 10, user = "local"))]
    fn top_artists_json(&self, py: Python<'_>, period: &str, limit: usize, user: &str) -> PyResult<String> {
        self.top(py, ItemKind::Artist, period, limit, user)
    }

    /// Top tracks of a period, as JSON.
    #[pyo3(signature = (period = "year", limit = 10, user = "local"))]
    fn top_tracks_json(&self, py: Python<'_>, period: &str, limit: usize, user: &str) -> PyResult<String> {
        self.top(py, ItemKind::Track, period, limit, user)
    }

    /// Top albums of a period, as JSON.
    #[pyo3(signature = (period = "year", limit = 10, user = "local"))]
    fn top_albums_json(&self, py: Python<'_>, period: &str, limit: usize, user: &str) -> PyResult<String> {
        self.top(py, ItemKind::Album, period, limit, user)
    }

    /// Plays and hours per bucket of a period (day, ISO week or month), zero-filled.
    #[pyo3(signature = (period = "year", tz = "UTC", user = "local"))]
    fn trend(&self, py: Python<'_>, period: &str, tz: &str, user: &str) -> PyResult<PyTable> {
        let (p, tz) = (self::period(py, period)?, zone(py, tz)?);
        let store = self.inner.clone();
        let t = block_on(py, async move {
            require_user(&*store, user).await?;
            analytics::trend(&*store, user, p, tz, Utc::now()).await
        })
        .map_err(|e| to_py(py, e))?;
        table(tables::trend_batch(&t.points).map_err(|e| invalid(py, e.to_string()))?)
    }
}
