//! `GET /api/health`, `GET /api/health/ready`, `GET /api/health/update` (no auth).

use super::ApiTags;
use crate::app::AppState;
use crate::dto::{Health, Readiness, UpdateInfo};
use crate::releases::is_newer;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use std::sync::Arc;

pub struct HealthApi;

#[derive(ApiResponse)]
enum ReadyResponse {
    /// The store (and Redis, when configured) answer.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// The store or Redis does not answer.
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

    /// Readiness: whether the database and, when one is configured, Redis answer.
    #[oai(path = "/api/health/ready", method = "get")]
    async fn ready(&self, state: Data<&Arc<AppState>>) -> ReadyResponse {
        let (store, redis) = tokio::join!(state.store.ping(), ping_redis(state.redis.as_ref()));
        let mut down = Vec::new();
        if let Err(e) = store {
            tracing::warn!(error = %e, "readiness: the store does not answer");
            down.push(format!("database not connected ({} backend)", state.store.backend()));
        }
        if let Err(e) = redis {
            tracing::warn!(error = %e, "readiness: Redis does not answer");
            down.push("cache unreachable".to_string());
        }
        if down.is_empty() {
            ReadyResponse::Ready(Json(Readiness { status: "ready".into(), reason: None }))
        } else {
            ReadyResponse::NotReady(Json(Readiness { status: "not_ready".into(), reason: Some(down.join(", ")) }))
        }
    }

    /// Whether a newer release is published (checked at most hourly, in the background:
    /// this answers at once with what is known; `latest_version` is null until the first
    /// check has answered, or when the server has no release check configured).
    #[oai(path = "/api/health/update", method = "get")]
    async fn update(&self, state: Data<&Arc<AppState>>) -> Json<UpdateInfo> {
        let current = env!("CARGO_PKG_VERSION");
        let latest = state.releases.latest();
        Json(UpdateInfo {
            current_version: current.into(),
            update_available: latest.as_ref().is_some_and(|r| is_newer(&r.version, current)),
            latest_version: latest.as_ref().map(|r| r.version.clone()),
            release_url: latest.as_ref().and_then(|r| r.url.clone()),
            release_notes: latest.as_ref().and_then(|r| r.notes.clone()),
            published_at: latest.and_then(|r| r.published_at),
        })
    }
}

/// How long Redis may take to answer a readiness ping.
const REDIS_PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// `PING` on a new connection (none configured: fine).
async fn ping_redis(client: Option<&redis::Client>) -> Result<(), String> {
    let Some(client) = client else { return Ok(()) };
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(REDIS_PING_TIMEOUT, ping).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", REDIS_PING_TIMEOUT.as_secs())),
    }
}
