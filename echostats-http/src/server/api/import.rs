//! `POST /api/v1/history/import`: upload a Spotify export, imported by a background job.

use super::ApiTags;
use crate::app::AppState;
use crate::auth::CurrentUser;
use crate::error::{ApiError, Detail};
use crate::jobs::{self, JobRecorder, Started};
use crate::upload::{self, UploadError, UploadForm};
use echostats::JobType;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use std::sync::Arc;

pub struct ImportApi;

/// The import job that was started.
#[derive(Object, Debug)]
pub struct ImportStarted {
    /// The job; follow it through `GET /api/v1/sync-jobs`.
    pub job_id: String,
    /// `pending`.
    pub status: String,
    /// 0.
    pub items_processed: i64,
    /// 0: entries are counted as the import reads them (the job shows the total when done).
    pub items_total: i64,
}

/// Answers of the import route besides the shared errors.
#[derive(ApiResponse, Debug)]
pub enum ImportResponse {
    /// Uploaded; the import runs in the background.
    #[oai(status = 202)]
    Accepted(Json<ImportStarted>),
    /// The upload is larger than the server accepts.
    #[oai(status = 413)]
    TooLarge(Json<Detail>),
}

fn conflict() -> ApiError {
    ApiError::Conflict(Json(Detail { detail: "an import is already running".into() }))
}

#[OpenApi(tag = "ApiTags::History")]
impl ImportApi {
    /// Imports listening history from a Spotify data export: the `my_spotify_data.zip` as
    /// downloaded, or one streaming history `.json`, as the multipart field `file`. The
    /// import runs as a background job (one at a time per user); follow it through
    /// `GET /api/v1/sync-jobs`. Plays already stored are not added twice.
    #[oai(path = "/api/v1/history/import", method = "post")]
    async fn import(
        &self,
        state: Data<&Arc<AppState>>,
        user: CurrentUser,
        form: UploadForm,
    ) -> Result<ImportResponse, ApiError> {
        // Refuse before the upload is read; the job created below is the atomic check.
        if jobs::active_job(&*state.store, user.id(), JobType::Import).await?.is_some() {
            return Err(conflict());
        }
        let limit = state.config.max_upload_bytes;
        let saved = match upload::save_file_field(form.0, limit, state.config.upload_dir.as_deref()).await {
            Ok(saved) => saved,
            Err(UploadError::TooLarge { limit }) => {
                return Ok(ImportResponse::TooLarge(Json(Detail {
                    detail: format!("the upload is larger than the limit of {limit} bytes"),
                })))
            }
            Err(UploadError::Missing) => {
                return Err(ApiError::invalid("body", upload::FILE_FIELD, "field required: the export file as `file`"))
            }
            Err(UploadError::NotAnExport(reason)) => return Err(ApiError::invalid("body", upload::FILE_FIELD, reason)),
            Err(UploadError::Body(reason)) => return Err(ApiError::invalid("body", "", reason)),
            Err(UploadError::Disk(e)) => {
                tracing::error!(error = %e, "cannot store an upload");
                return Err(ApiError::internal());
            }
        };
        tracing::info!(user = %user.id(), bytes = saved.bytes, kind = ?saved.kind, "history upload stored");
        match JobRecorder::create(&state.store, user.id(), JobType::Import, true).await? {
            Started::New(job) => {
                let job_id = job.id().to_string();
                jobs::spawn(job.clone(), jobs::import_upload(state.0.clone(), job, saved));
                Ok(ImportResponse::Accepted(Json(ImportStarted {
                    job_id,
                    status: "pending".into(),
                    items_processed: 0,
                    items_total: 0,
                })))
            }
            Started::AlreadyRunning(_) => Err(conflict()),
        }
    }
}
