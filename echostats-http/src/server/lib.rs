//! # echostats-http
//!
//! The EchoStats REST server: the EchoStats API (same paths, parameters, defaults and JSON
//! shapes) over any store, on poem + poem-openapi. Handlers only translate between DTOs and
//! `echostats` core calls; the analytics live in the core.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let store = echostats::open_store("sqlite://echostats.db").await?;
//! let mut config = echostats_http::ServerConfig::new(b"a secret of at least thirty-two bytes".to_vec());
//! config.bind = "127.0.0.1:8000".into();
//! let server = echostats_http::Server::bind(config, store).await?;
//! println!("listening on http://{}", server.local_addr());
//! server.wait().await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod api;
mod app;
mod auth;
mod config;
mod crypto;
pub mod demo;
mod dto;
mod error;
mod jobs;
mod metrics;
mod middleware;
mod oauth;
mod releases;
mod spec;
mod spotify_dto;
mod timestamp;
mod upload;

pub use app::{openapi_spec, Server};
pub use config::{RateLimit, ServerConfig, MIN_JWT_SECRET_LEN};
pub use crypto::TokenKey;
pub use echostats::spotify::SpotifyConfig;
