//! `GET /api/v1/history/export`: the user's whole history (or a time window) as a file to
//! download: Spotify's extended streaming history in a zip, which `POST
//! /api/v1/history/import` (or `echostats import`) takes back, or CSV.
//!
//! The file is written to an unnamed temporary file (gone from the disk as soon as it is
//! closed, whatever happens to the download) and streamed from there: memory stays bounded
//! by a chunk of plays whatever the history's size.

use super::history::parse_instant;
use super::ApiTags;
use crate::app::AppState;
use crate::auth::CurrentUser;
use crate::error::ApiError;
use echostats::export::{write_csv, write_extended_history};
use echostats::store::TimeWindow;
use poem::web::Data;
use poem::Body;
use poem_openapi::param::Query;
use poem_openapi::payload::Attachment;
use poem_openapi::{ApiResponse, Enum, OpenApi};
use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct ExportApi;

/// What the export holds.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum ExportFormat {
    /// `echostats-history.zip`: `Streaming_History_Audio_*.json` files, as Spotify's export.
    Extended,
    /// `echostats-history.csv`: one row per play with every stored field.
    Csv,
}

fn default_format() -> ExportFormat {
    ExportFormat::Extended
}

/// The answer of the export route besides the shared errors.
#[derive(ApiResponse, Debug)]
pub enum ExportResponse {
    /// The file, as an attachment.
    #[oai(status = 200)]
    File(Attachment<Body>),
}

#[OpenApi(tag = "ApiTags::History")]
impl ExportApi {
    /// The stored history as a file to download.
    ///
    /// All plays (imported and synced, oldest first) or those of a time window: as Spotify's
    /// extended streaming history in a zip, which `POST /api/v1/history/import` takes back
    /// into this or another server with the same statistics (plays already stored are not
    /// added twice), or as CSV. Fields Spotify's format has no room for (the origin of a
    /// record, the artist id and playback context of synced plays) are kept under
    /// `echostats_` names.
    #[oai(path = "/api/v1/history/export", method = "get")]
    async fn export(
        &self,
        state: Data<&Arc<AppState>>,
        user: CurrentUser,
        /// `extended` (a zip of `Streaming_History_Audio_*.json`) or `csv`.
        #[oai(default = "default_format")]
        format: Query<ExportFormat>,
        /// ISO 8601 start (inclusive).
        start_date: Query<Option<String>>,
        /// ISO 8601 end (exclusive; a bare date includes that day).
        end_date: Query<Option<String>>,
    ) -> Result<ExportResponse, ApiError> {
        let start = start_date.0.as_deref().map(|s| parse_instant("start_date", s, false)).transpose()?;
        let end = end_date.0.as_deref().map(|s| parse_instant("end_date", s, true)).transpose()?;
        let window = TimeWindow::open_ended(start, end)
            .map_err(|_| ApiError::invalid("query", "end_date", "end_date must be after start_date"))?;
        let dir = state.config.upload_dir.clone().unwrap_or_else(std::env::temp_dir);
        let disk = |e: io::Error| {
            tracing::error!(error = %e, dir = %dir.display(), "cannot write an export");
            ApiError::internal()
        };
        let (mut file, name) = match format.0 {
            ExportFormat::Csv => {
                let file = tempfile::tempfile_in(&dir).map_err(disk)?;
                let out = BufWriter::new(file.try_clone().map_err(disk)?);
                write_csv(&*state.store, user.id(), window, out).await?;
                (file, "echostats-history.csv")
            }
            ExportFormat::Extended => {
                let work = tempfile::tempdir_in(&dir).map_err(disk)?;
                let written = write_extended_history(&*state.store, user.id(), window, work.path()).await?;
                let zip_dir = dir.clone();
                let zipped = tokio::task::spawn_blocking(move || zip_files(&written.files, &zip_dir)).await;
                drop(work);
                (zipped.map_err(|e| disk(io::Error::other(e)))?.map_err(disk)?, "echostats-history.zip")
            }
        };
        file.rewind().map_err(disk)?;
        let body = Body::from_async_read(tokio::fs::File::from_std(file));
        Ok(ExportResponse::File(Attachment::new(body).filename(name)))
    }
}

/// The files in a zip (as `Spotify Extended Streaming History/NAME`, Spotify's layout),
/// written to an unnamed temporary file in `dir`. Fast deflate: the JSON shrinks ~10×
/// even so, at several times the speed of the default level.
fn zip_files(files: &[PathBuf], dir: &Path) -> io::Result<File> {
    let mut zip = zip::ZipWriter::new(BufWriter::new(tempfile::tempfile_in(dir)?));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1));
    for path in files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        zip.start_file(format!("Spotify Extended Streaming History/{name}"), options)?;
        io::copy(&mut File::open(path)?, &mut zip)?;
    }
    let mut out = zip.finish()?;
    out.flush()?;
    out.into_inner().map_err(|e| e.into_error())
}
