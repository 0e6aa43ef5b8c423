//! The middleware of every request (outermost first, see `app.rs`): request id and access
//! log, metrics, security headers, CORS, gzip, rate limit, timeout, error shapes.

use crate::error::{error_response, status_response, ApiError};
use crate::metrics::{REQUESTS_TOTAL, REQUEST_DURATION};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use poem::http::{header, HeaderValue, StatusCode};
use poem::PathPattern;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// The request id header (in and out).
pub const REQUEST_ID: &str = "x-request-id";

/// A client-supplied id is kept when it is short, visible ASCII; otherwise a new one.
fn request_id(req: &Request) -> String {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(String::from)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Request id in and out, a tracing span carrying it around everything the request does,
/// one access log line, and the request metrics. Turns any error left into a response.
pub struct Observe;

impl<E: Endpoint> Middleware<E> for Observe {
    type Output = ObserveEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        ObserveEndpoint { ep }
    }
}

#[doc(hidden)]
pub struct ObserveEndpoint<E> {
    ep: E,
}

impl<E: Endpoint> Endpoint for ObserveEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        let id = request_id(&req);
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let span = tracing::info_span!("request", request_id = %id, method = %method, path = %path);
        async move {
            let started = Instant::now();
            let mut resp = match self.ep.call(req).await {
                Ok(r) => r.into_response(),
                Err(e) => error_response(e),
            };
            let elapsed = started.elapsed();
            let status = resp.status().as_u16();
            let route = resp.data::<PathPattern>().map(|p| p.0.to_string()).unwrap_or_else(|| "unmatched".into());
            let labels = [("method", method.to_string()), ("path", route), ("status", status.to_string())];
            metrics::counter!(REQUESTS_TOTAL, &labels).increment(1);
            metrics::histogram!(REQUEST_DURATION, &labels).record(elapsed.as_secs_f64());
            tracing::info!(status, latency_ms = (elapsed.as_secs_f64() * 10_000.0).round() / 10.0, "served");
            if let Ok(v) = HeaderValue::from_str(&id) {
                resp.headers_mut().insert(REQUEST_ID, v);
            }
            Ok(resp)
        }
        .instrument(span)
        .await
    }
}

/// Converts errors of the routes into EchoStats-shaped responses, so that everything
/// outside (compression, metrics) sees the final status and body.
pub struct ShapeErrors;

impl<E: Endpoint> Middleware<E> for ShapeErrors {
    type Output = ShapeErrorsEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        ShapeErrorsEndpoint { ep }
    }
}

#[doc(hidden)]
pub struct ShapeErrorsEndpoint<E> {
    ep: E,
}

impl<E: Endpoint> Endpoint for ShapeErrorsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        let path = req.uri().path().to_string();
        let mut resp = match self.ep.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => {
                // Keep the matched route for the metrics.
                let pattern = e.data::<PathPattern>().cloned();
                let mut resp = error_response(e);
                if let Some(p) = pattern {
                    resp.set_data(p);
                }
                resp
            }
        };
        // RFC 9110: a 405 lists the methods the resource supports.
        if resp.status() == StatusCode::METHOD_NOT_ALLOWED && !resp.headers().contains_key(header::ALLOW) {
            if let Some(allow) = crate::spec::allowed_methods(&path).and_then(|m| HeaderValue::from_str(&m).ok()) {
                resp.headers_mut().insert(header::ALLOW, allow);
            }
        }
        Ok(resp)
    }
}

/// Per-client-IP rate limit (GCRA, `governor`): 429 with `Retry-After` when exceeded.
pub struct RateLimit {
    limiter: std::sync::Arc<DefaultKeyedRateLimiter<IpAddr>>,
    message: String,
    trust_proxy: bool,
}

impl RateLimit {
    /// `limit.requests` per `limit.window` per client IP; with `trust_proxy` the client IP
    /// is the first address of `X-Forwarded-For`.
    pub fn new(limit: crate::config::RateLimit, trust_proxy: bool) -> Self {
        let requests = NonZeroU32::new(limit.requests.max(1)).expect("at least 1");
        let quota = Quota::with_period(limit.window / requests.get())
            .unwrap_or_else(|| Quota::per_second(requests))
            .allow_burst(requests);
        RateLimit {
            limiter: std::sync::Arc::new(DefaultKeyedRateLimiter::keyed(quota)),
            message: format!("Rate limit exceeded: {} per {} seconds", limit.requests, limit.window.as_secs()),
            trust_proxy,
        }
    }
}

impl<E: Endpoint> Middleware<E> for RateLimit {
    type Output = RateLimitEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        RateLimitEndpoint {
            ep,
            limiter: self.limiter.clone(),
            message: self.message.clone(),
            trust_proxy: self.trust_proxy,
            seen: AtomicU64::new(0),
        }
    }
}

#[doc(hidden)]
pub struct RateLimitEndpoint<E> {
    ep: E,
    limiter: std::sync::Arc<DefaultKeyedRateLimiter<IpAddr>>,
    message: String,
    trust_proxy: bool,
    seen: AtomicU64,
}

fn client_ip(req: &Request, trust_proxy: bool) -> Option<IpAddr> {
    if trust_proxy {
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    req.remote_addr().as_socket_addr().map(|a| a.ip())
}

impl<E: Endpoint> Endpoint for RateLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        // Forget idle clients now and then, so the table does not grow without bound.
        if self.seen.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.limiter.retain_recent();
        }
        if let Some(ip) = client_ip(&req, self.trust_proxy) {
            if let Err(not_until) = self.limiter.check_key(&ip) {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                tracing::warn!(client = %ip, "rate limited");
                return Ok(ApiError::too_many_requests(self.message.clone(), wait).into_response());
            }
        }
        self.ep.call(req).await.map(IntoResponse::into_response)
    }
}

/// Time limit of a request: 504 when exceeded. Slow routes get the longer limit.
pub struct Timeout {
    pub normal: Duration,
    pub slow: Duration,
}

/// Routes allowed the slow limit (rebuilds, imports, and exports: an export writes the
/// whole file before it answers).
const SLOW_ROUTES: &[&str] = &["/api/v1/analytics/rollup-build", "/api/v1/history/import", "/api/v1/history/export"];

impl<E: Endpoint> Middleware<E> for Timeout {
    type Output = TimeoutEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        TimeoutEndpoint { ep, normal: self.normal, slow: self.slow }
    }
}

#[doc(hidden)]
pub struct TimeoutEndpoint<E> {
    ep: E,
    normal: Duration,
    slow: Duration,
}

impl<E: Endpoint> Endpoint for TimeoutEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        let limit = if SLOW_ROUTES.contains(&req.uri().path()) { self.slow } else { self.normal };
        match tokio::time::timeout(limit, self.ep.call(req)).await {
            Ok(r) => r.map(IntoResponse::into_response),
            Err(_) => {
                tracing::warn!(limit_secs = limit.as_secs_f64(), "request timed out");
                Ok(status_response(StatusCode::GATEWAY_TIMEOUT))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handler that waits longer than the normal limit times out with 504; on a slow
    /// route the same wait is within its limit.
    #[tokio::test]
    async fn a_request_over_its_limit_gets_504_and_slow_routes_have_their_own() {
        use poem::{handler, EndpointExt, Route};
        #[handler]
        async fn wait() -> &'static str {
            tokio::time::sleep(Duration::from_millis(300)).await;
            "done"
        }
        let app = Route::new()
            .at("/api/v1/analytics/overview", wait)
            .at("/api/v1/analytics/rollup-build", wait)
            .with(Timeout { normal: Duration::from_millis(20), slow: Duration::from_secs(30) });
        let answer = |path: &str| app.get_response(Request::builder().uri(path.parse().unwrap()).finish());
        assert_eq!(answer("/api/v1/analytics/overview").await.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(answer("/api/v1/analytics/rollup-build").await.status(), StatusCode::OK);
    }

    #[test]
    fn request_ids_are_kept_when_sane() {
        let req = Request::builder().header(REQUEST_ID, "abc-123").finish();
        assert_eq!(request_id(&req), "abc-123");
        let req = Request::builder().header(REQUEST_ID, "has space").finish();
        assert_ne!(request_id(&req), "has space");
        let req = Request::builder().header(REQUEST_ID, "x".repeat(200)).finish();
        assert_eq!(request_id(&req).len(), 36, "a fresh UUID");
    }
}
