//! The Spotify Web API client: OAuth (authorization code with PKCE, token refresh) and the
//! calls EchoStats makes. Every call is logged as an [`crate::ApiCallLog`] through the
//! store (method, path, status, latency; never a token or a query string).
//!
//! Errors map into the core [`crate::Error`]: a 429 is [`crate::Error::RateLimited`] with
//! Spotify's `Retry-After` (which can be hours), a 401 is [`crate::Error::Unauthenticated`],
//! anything else that failed is [`crate::Error::Spotify`].
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn echostats_core::store::Store>) -> echostats_core::Result<()> {
//! use echostats_core::spotify::{SpotifyClient, SpotifyConfig};
//! let config = SpotifyConfig::new("client id", "client secret");
//! let client = SpotifyClient::new(config, store)?;
//! let url = client.authorize_url("some-state", "a-pkce-verifier-of-at-least-43-characters-xxxxxx");
//! println!("open {url}");
//! # Ok(()) }
//! ```

mod client;
mod oauth;
pub mod wire;

pub use client::{SpotifyClient, SpotifyConfig};
pub use oauth::{pkce_challenge, Connected, TokenSet, SCOPES};
/// The HTTP method of [`SpotifyClient::command`].
pub use reqwest::Method;
