//! Errors in the EchoStats shapes, mapped in one place:
//! - [`ApiError::from`] maps every core [`echostats::Error`] kind to a status and body;
//! - [`error_response`] turns whatever else a route or middleware fails with (poem-openapi's
//!   parameter parse errors, unknown routes, panics) into the same shapes.
//!
//! Bodies: `{"detail": "..."}`, and for validation (422) the list form
//! `{"detail": [{"loc": ["query", "period"], "msg": "...", "type": "value_error"}]}`.

use echostats::Error;
use poem::http::{header, StatusCode};
use poem::{IntoResponse, Response};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use std::time::Duration;

/// Seconds a client should wait before retrying when the database is unreachable.
pub const BACKEND_RETRY_AFTER_SECS: u64 = 5;

/// An error message: `{"detail": "Not authenticated"}`.
#[derive(Object, Debug, Clone)]
pub struct Detail {
    /// What went wrong.
    pub detail: String,
}

/// One validation problem.
#[derive(Object, Debug, Clone)]
pub struct ValidationIssue {
    /// Where: `["query", "limit"]`, `["path", "track_id"]`, `["body"]`.
    pub loc: Vec<String>,
    /// What is wrong and what is accepted.
    pub msg: String,
    /// Kind of problem (`value_error`).
    #[oai(rename = "type")]
    pub kind: String,
}

/// A validation error: `{"detail": [{"loc": [...], "msg": "...", "type": "value_error"}]}`.
#[derive(Object, Debug, Clone)]
pub struct ValidationErrors {
    /// The problems.
    pub detail: Vec<ValidationIssue>,
}

/// Every error response of the API (documented on each operation).
#[derive(ApiResponse, Debug)]
pub enum ApiError {
    /// Not authenticated: no valid session cookie or bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<Detail>),
    /// Forbidden.
    #[oai(status = 403)]
    Forbidden(Json<Detail>),
    /// Not found.
    #[oai(status = 404)]
    NotFound(Json<Detail>),
    /// Conflicts with what exists.
    #[oai(status = 409)]
    Conflict(Json<Detail>),
    /// Invalid parameters.
    #[oai(status = 422)]
    Validation(Json<ValidationErrors>),
    /// Too many requests; retry after the given seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<Detail>, #[oai(header = "Retry-After")] u64),
    /// Internal server error.
    #[oai(status = 500)]
    Internal(Json<Detail>),
    /// Not supported by this server or store.
    #[oai(status = 501)]
    NotImplemented(Json<Detail>),
    /// Spotify API unavailable or failing.
    #[oai(status = 502)]
    BadGateway(Json<Detail>),
    /// The database is unreachable; retry after the given seconds.
    #[oai(status = 503)]
    Unavailable(Json<Detail>, #[oai(header = "Retry-After")] u64),
}

fn detail(s: impl Into<String>) -> Json<Detail> {
    Json(Detail { detail: s.into() })
}

impl ApiError {
    /// 401 `Not authenticated`.
    pub fn unauthenticated() -> Self {
        ApiError::Unauthorized(detail("Not authenticated"))
    }
    /// 403 with a message.
    pub fn forbidden(why: impl Into<String>) -> Self {
        ApiError::Forbidden(detail(why))
    }
    /// 404 with a message.
    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::NotFound(detail(what))
    }
    /// 422 for one parameter: `loc` = `[place, name]` (`query`, `path`, `body`).
    pub fn invalid(place: &str, name: &str, msg: impl Into<String>) -> Self {
        ApiError::Validation(Json(ValidationErrors {
            detail: vec![ValidationIssue {
                loc: [place, name].into_iter().filter(|s| !s.is_empty()).map(String::from).collect(),
                msg: msg.into(),
                kind: "value_error".into(),
            }],
        }))
    }
    /// 429 with `Retry-After`.
    pub fn too_many_requests(msg: impl Into<String>, retry_after: Duration) -> Self {
        ApiError::TooManyRequests(detail(msg), retry_after_secs(retry_after))
    }
    /// 500 `Internal server error` (the cause goes to the log, not to the client).
    pub fn internal() -> Self {
        ApiError::Internal(detail("Internal server error"))
    }
    /// 503 `Service temporarily unavailable` with `Retry-After`.
    pub fn unavailable() -> Self {
        ApiError::Unavailable(detail("Service temporarily unavailable"), BACKEND_RETRY_AFTER_SECS)
    }
}

/// Whole seconds, rounded up, at least 1 (a `Retry-After: 0` invites a busy loop).
pub fn retry_after_secs(d: Duration) -> u64 {
    (d.as_millis().div_ceil(1000) as u64).max(1)
}

fn capitalized(s: String) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => s,
    }
}

/// The one mapping from core error kinds to HTTP: what the client may see, and a log line
/// (with the source) for what it may not.
impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound { .. } => ApiError::NotFound(detail(capitalized(e.to_string()))),
            Error::AlreadyExists { .. } => ApiError::Conflict(detail(capitalized(e.to_string()))),
            Error::InvalidInput { message } => ApiError::invalid("query", "", message),
            Error::Import { .. } => ApiError::invalid("body", "file", e.to_string()),
            Error::Spotify { .. } => {
                tracing::warn!(error = %e, "Spotify API error");
                ApiError::BadGateway(detail(e.to_string()))
            }
            Error::RateLimited { retry_after } => {
                ApiError::too_many_requests(e.to_string(), retry_after.unwrap_or(Duration::from_secs(1)))
            }
            Error::Unauthenticated => ApiError::unauthenticated(),
            Error::NotSupported { .. } => ApiError::NotImplemented(detail(capitalized(e.to_string()))),
            Error::BackendUnavailable { .. } => {
                tracing::error!(error = %e, "database unavailable");
                ApiError::unavailable()
            }
            e => {
                tracing::error!(error = %e, source = ?std::error::Error::source(&e), "internal error");
                ApiError::internal()
            }
        }
    }
}

/// The message of a poem-openapi parameter error in the words FastAPI uses: validator
/// failures (`verification failed. maximum(100, exclusive: false)`), enums and integers.
fn param_message(name: &str, reason: &str) -> String {
    if reason.ends_with("Expect a valid enumeration value.") {
        // The one enum parameter of the API.
        if name == "period" {
            let permitted: Vec<String> =
                echostats::analytics::Period::ALL.iter().map(|p| format!("'{}'", p.as_str())).collect();
            return format!("value is not a valid enumeration member; permitted: {}", permitted.join(", "));
        }
        return "value is not a valid enumeration member".into();
    }
    if reason.starts_with("failed to parse \"integer") {
        return "value is not a valid integer".into();
    }
    let Some(rule) = reason.strip_prefix("verification failed. ") else { return reason.to_string() };
    let bound = |name: &str| {
        rule.strip_prefix(name)
            .and_then(|r| r.strip_prefix('('))
            .and_then(|r| r.split_once(", exclusive: "))
            .map(|(n, excl)| (n.to_string(), excl.starts_with("true")))
    };
    if let Some((n, exclusive)) = bound("maximum") {
        return format!("ensure this value is less than{} {n}", if exclusive { "" } else { " or equal to" });
    }
    if let Some((n, exclusive)) = bound("minimum") {
        return format!("ensure this value is greater than{} {n}", if exclusive { "" } else { " or equal to" });
    }
    reason.to_string()
}

/// Converts any error that reached the edge of the routes into an EchoStats-shaped
/// response. Responses built from [`ApiError`] (JSON already) pass through unchanged.
pub fn error_response(err: poem::Error) -> Response {
    use poem_openapi::error::{
        ContentTypeError, ParseMultipartError, ParseParamError, ParsePathError, ParseRequestPayloadError,
    };
    if let Some(e) = err.downcast_ref::<ParseParamError>() {
        return ApiError::invalid("query", e.name, param_message(e.name, &e.reason)).into_response();
    }
    if let Some(e) = err.downcast_ref::<ParsePathError>() {
        return ApiError::invalid("path", e.name, e.reason.clone()).into_response();
    }
    if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        return ApiError::invalid("body", "", e.reason.clone()).into_response();
    }
    if let Some(e) = err.downcast_ref::<ParseMultipartError>() {
        return ApiError::invalid("body", "", e.reason.clone()).into_response();
    }
    if let Some(e) = err.downcast_ref::<ContentTypeError>() {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, detail(e.to_string())).into_response();
    }
    let status = err.status();
    if !err.has_source() {
        let resp = err.into_response();
        let is_json = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if is_json {
            return resp;
        }
        return status_response(resp.status());
    }
    if status.is_server_error() {
        tracing::error!(error = %err, "unhandled error");
    }
    status_response(status)
}

/// A `{"detail": ...}` response for a bare status, with the message FastAPI would give.
pub fn status_response(status: StatusCode) -> Response {
    let message = match status {
        StatusCode::NOT_FOUND => "Not Found".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => "Method Not Allowed".to_string(),
        StatusCode::UNAUTHORIZED => "Not authenticated".to_string(),
        StatusCode::GATEWAY_TIMEOUT => "Request timeout".to_string(),
        s if s.is_server_error() => "Internal server error".to_string(),
        s => s.canonical_reason().unwrap_or("Error").to_string(),
    };
    let mut resp = Json(Detail { detail: message }).into_response();
    resp.set_status(status);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_messages_read_like_fastapi() {
        assert_eq!(
            param_message("limit", "verification failed. maximum(100, exclusive: false)"),
            "ensure this value is less than or equal to 100"
        );
        assert_eq!(
            param_message("page", "verification failed. minimum(1, exclusive: false)"),
            "ensure this value is greater than or equal to 1"
        );
        assert_eq!(
            param_message("period", "failed to parse \"Period\": Expect a valid enumeration value."),
            "value is not a valid enumeration member; permitted: 'week', 'month', 'quarter', 'year', 'all_time'"
        );
        assert_eq!(
            param_message("limit", "failed to parse \"integer(uint32)\": invalid digit found in string"),
            "value is not a valid integer"
        );
        assert_eq!(param_message("x", "something else"), "something else");
    }

    #[test]
    fn core_errors_map_to_statuses() {
        let status = |e: Error| ApiError::from(e).into_response();
        let io = || Box::new(std::io::Error::other("boom"));
        assert_eq!(status(Error::not_found("track \"x\"")).status(), StatusCode::NOT_FOUND);
        assert_eq!(status(Error::invalid("bad")).status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(status(Error::Unauthenticated).status(), StatusCode::UNAUTHORIZED);
        assert_eq!(status(Error::Spotify { status: 500, message: "x".into() }).status(), StatusCode::BAD_GATEWAY);
        assert_eq!(status(Error::NotSupported { what: "x".into() }).status(), StatusCode::NOT_IMPLEMENTED);
        assert_eq!(
            status(Error::Backend { backend: "sqlite", source: io() }).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let r = status(Error::RateLimited { retry_after: Some(Duration::from_millis(2500)) });
        assert_eq!(
            (r.status(), r.headers()[header::RETRY_AFTER].to_str().unwrap()),
            (StatusCode::TOO_MANY_REQUESTS, "3")
        );
        let r = status(Error::BackendUnavailable { backend: "postgres", source: io() });
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER].to_str().unwrap(), BACKEND_RETRY_AFTER_SECS.to_string());
    }

    #[test]
    fn retry_after_is_rounded_up_and_never_zero() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }
}
