//! Prometheus metrics at `/metrics`, through the `metrics` facade (so the core and the
//! stores can record their own figures later without knowing about HTTP) and
//! `metrics-exporter-prometheus` as the process-wide recorder, rendered on request (no
//! listener thread of its own).

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use poem::http::StatusCode;
use poem::{handler, IntoResponse, Response};
use std::sync::OnceLock;

/// Requests by method, route pattern and status.
pub const REQUESTS_TOTAL: &str = "http_requests_total";
/// Request latency by method, route pattern and status.
pub const REQUEST_DURATION: &str = "http_request_duration_seconds";

const LATENCY_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0];

/// The process-wide recorder, installed on first use. `None` when another recorder was
/// installed first (then nothing is exported).
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), LATENCY_BUCKETS)
                .expect("latency buckets are not empty");
            match builder.install_recorder() {
                Ok(h) => {
                    metrics::describe_counter!(REQUESTS_TOTAL, "HTTP requests by method, route and status.");
                    metrics::describe_histogram!(
                        REQUEST_DURATION,
                        metrics::Unit::Seconds,
                        "HTTP request latency by method, route and status."
                    );
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot install the Prometheus recorder; /metrics stays empty");
                    None
                }
            }
        })
        .as_ref()
}

/// `GET /metrics`: the Prometheus text format.
#[handler]
pub fn render() -> Response {
    let Some(h) = handle() else { return StatusCode::SERVICE_UNAVAILABLE.into_response() };
    h.run_upkeep();
    h.render().with_content_type("text/plain; version=0.0.4; charset=utf-8").into_response()
}
