//! `GET /api/health`, `GET /api/health/ready` (no auth).

use super::ApiTags;
use crate::app::AppState;
use crate::dto::{Health, Readiness};
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use std::sync::Arc;

pub struct HealthApi;

#[derive(ApiResponse)]
enum ReadyResponse {
    /// The store answers.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// The store does not answer.
    #[oai(status = 503)]
    NotReady(Json<Readiness>),
}

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Service status.
    #[oai(path = "/api/health", method = "get")]
    async fn health(&self) -> Json<Health> {
        Json(Health {
            status: "healthy".into(),
            service: "echostats-api".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    /// Readiness: whether the database answers.
    #[oai(path = "/api/health/ready", method = "get")]
    async fn ready(&self, state: Data<&Arc<AppState>>) -> ReadyResponse {
        match state.store.ping().await {
            Ok(()) => ReadyResponse::Ready(Json(Readiness { status: "ready".into(), reason: None })),
            Err(e) => {
                tracing::warn!(error = %e, "readiness check failed");
                ReadyResponse::NotReady(Json(Readiness {
                    status: "not_ready".into(),
                    reason: Some(format!("database not connected ({} backend)", state.store.backend())),
                }))
            }
        }
    }
}
