//! [`SpotifyClient`]: one HTTP client for the accounts service and the Web API, with the
//! error mapping and the call log.

use super::oauth::{pkce_challenge, Connected, TokenSet, SCOPES};
use super::wire::{self, ErrorBody, ErrorField, TokenResponse};
use crate::store::Store;
use crate::{ApiCallLog, Error, Result};
use chrono::Utc;
use reqwest::{Method, RequestBuilder, Url};
use serde::de::DeserializeOwned;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where Spotify is and who we are to it.
#[derive(Clone)]
pub struct SpotifyConfig {
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret (Basic auth at `/api/token`).
    pub client_secret: String,
    /// The redirect URI registered for the app (HTTPS, or loopback `http://127.0.0.1:PORT`).
    pub redirect_uri: String,
    /// The accounts service: `https://accounts.spotify.com` (tests point it at a fake).
    pub accounts_url: String,
    /// The Web API: `https://api.spotify.com` (tests point it at a fake).
    pub api_url: String,
    /// Time limit of one call.
    pub timeout: Duration,
}

impl std::fmt::Debug for SpotifyConfig {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpotifyConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_uri", &self.redirect_uri)
            .field("accounts_url", &self.accounts_url)
            .field("api_url", &self.api_url)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl SpotifyConfig {
    /// The real Spotify, with the EchoStats redirect URI
    /// `http://127.0.0.1:8000/api/v1/auth/callback` and calls of at most 20 s.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        SpotifyConfig {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uri: "http://127.0.0.1:8000/api/v1/auth/callback".into(),
            accounts_url: "https://accounts.spotify.com".into(),
            api_url: "https://api.spotify.com".into(),
            timeout: Duration::from_secs(20),
        }
    }
}

/// A call that failed before Spotify answered, or an error inside the client.
#[derive(Debug, thiserror::Error)]
enum ClientError {
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
    #[error("{0}")]
    Transport(#[from] reqwest::Error),
    #[error("unexpected answer: {0}")]
    Decode(#[from] serde_json::Error),
}

impl From<ClientError> for Error {
    fn from(e: ClientError) -> Self {
        // Status 0: no (usable) answer from Spotify.
        Error::Spotify { status: 0, message: e.to_string() }
    }
}

/// The Spotify client. Cheap to share (`Arc`); one per server.
///
/// After a 429 it answers [`Error::RateLimited`] itself until `Retry-After` has passed,
/// without calling Spotify: the limit is per app, and calling on only makes it longer.
pub struct SpotifyClient {
    http: reqwest::Client,
    config: SpotifyConfig,
    store: Arc<dyn Store>,
    blocked_until: Mutex<Option<Instant>>,
}

const API: &str = "spotify";
const ACCOUNTS: &str = "spotify-accounts";

/// A unique id for a log entry: time, a process counter and per-process randomness.
fn log_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| std::collections::hash_map::RandomState::new().build_hasher().finish());
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!("{nanos:016x}{seed:016x}{:08x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// What one call answered: status and body.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl SpotifyClient {
    /// A client for `config` that logs every call into `store`.
    pub fn new(config: SpotifyConfig, store: Arc<dyn Store>) -> Result<Self> {
        // rustls with the platform's roots (reqwest's `rustls` feature).
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("echostats/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Build(e.to_string()))?;
        Ok(SpotifyClient { http, config, store, blocked_until: Mutex::new(None) })
    }

    /// The configuration.
    pub fn config(&self) -> &SpotifyConfig {
        &self.config
    }

    /// The authorization page to send the browser to: authorization code with PKCE (S256
    /// of `verifier`), the EchoStats [`SCOPES`], and `state` for the callback to check.
    pub fn authorize_url(&self, state: &str, verifier: &str) -> String {
        let base = format!("{}/authorize", self.config.accounts_url.trim_end_matches('/'));
        let mut url =
            Url::parse(&base).unwrap_or_else(|_| Url::parse("https://accounts.spotify.com/authorize").unwrap());
        url.query_pairs_mut()
            .append_pair("client_id", &self.config.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", &self.config.redirect_uri)
            .append_pair("scope", &SCOPES.join(" "))
            .append_pair("state", state)
            .append_pair("code_challenge_method", "S256")
            .append_pair("code_challenge", &pkce_challenge(verifier));
        url.into()
    }

    /// The OAuth callback: exchanges `code` (with the PKCE `verifier`) for tokens and reads
    /// the account they belong to. Both calls are logged for that account's user id.
    pub async fn connect(&self, code: &str, verifier: &str) -> Result<Connected> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.config.redirect_uri.as_str()),
            ("code_verifier", verifier),
        ];
        let mut logs = Vec::new();
        let result = async {
            let tokens = self.token_call(&form, None, &mut logs).await?;
            let (answer, log) =
                self.send(API, Method::GET, "/v1/me", self.api_get("/v1/me", &tokens.access_token)).await;
            logs.push(log);
            let profile: wire::CurrentUser = decode(answer?)?.ok_or_else(|| no_body("/v1/me"))?;
            Ok(Connected { tokens, profile })
        }
        .await;
        let user = result.as_ref().ok().map(|c: &Connected| c.profile.id.clone());
        self.record(user.as_deref(), logs).await;
        result
    }

    /// A new access token for `tokens`. Spotify may or may not send a new refresh token;
    /// the old one is kept when it does not. An expired or revoked refresh token
    /// (`invalid_grant`) is [`Error::Unauthenticated`]: the user has to sign in again.
    pub async fn refresh(&self, user_id: &str, tokens: &TokenSet) -> Result<TokenSet> {
        let form = [("grant_type", "refresh_token"), ("refresh_token", tokens.refresh_token.as_str())];
        let mut logs = Vec::new();
        let result = self.token_call(&form, Some(&tokens.refresh_token), &mut logs).await;
        self.record(Some(user_id), logs).await;
        let mut fresh = result?;
        if fresh.scope.is_none() {
            fresh.scope = tokens.scope.clone();
        }
        Ok(fresh)
    }

    async fn token_call(
        &self,
        form: &[(&str, &str)],
        old_refresh: Option<&str>,
        logs: &mut Vec<ApiCallLog>,
    ) -> Result<TokenSet> {
        let url = format!("{}/api/token", self.config.accounts_url.trim_end_matches('/'));
        let req = self.http.post(url).basic_auth(&self.config.client_id, Some(&self.config.client_secret)).form(form);
        let (answer, log) = self.send(ACCOUNTS, Method::POST, "/api/token", req).await;
        logs.push(log);
        let answer = answer.map_err(|e| match e {
            // The accounts service answers 400 `invalid_grant` for a bad code or a dead
            // refresh token: a new sign-in is needed.
            Error::Spotify { status: 400, ref message } if message.contains("invalid_grant") => Error::Unauthenticated,
            e => e,
        })?;
        let t: TokenResponse = decode(answer)?.ok_or_else(|| no_body("/api/token"))?;
        let refresh_token = match (t.refresh_token, old_refresh) {
            (Some(r), _) => r,
            (None, Some(old)) => old.to_string(),
            (None, None) => {
                return Err(Error::Spotify { status: 200, message: "the token answer has no refresh token".into() })
            }
        };
        Ok(TokenSet {
            access_token: t.access_token,
            refresh_token,
            expires_at: Utc::now() + chrono::Duration::seconds(t.expires_in.unwrap_or(3600)),
            scope: t.scope,
        })
    }

    fn api_url(&self, path: &str) -> String {
        format!("{}{path}", self.config.api_url.trim_end_matches('/'))
    }

    fn api_get(&self, path: &str, access_token: &str) -> RequestBuilder {
        self.http.get(self.api_url(path)).bearer_auth(access_token)
    }

    /// `GET {api}{path}?{query}` as `user_id`, decoded; `None` for a 204 (nothing playing,
    /// no active device).
    pub async fn get<T: DeserializeOwned>(
        &self,
        user_id: &str,
        access_token: &str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Option<T>> {
        let req = self.api_get(path, access_token).query(query);
        let (answer, log) = self.send(API, Method::GET, path, req).await;
        self.record(Some(user_id), vec![log]).await;
        decode(answer?)
    }

    /// A call that changes something (player controls): `method {api}{path}` with an
    /// optional JSON body; the answer's body is not read.
    pub async fn command(
        &self,
        user_id: &str,
        access_token: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<()> {
        let mut req = self.http.request(method.clone(), self.api_url(path)).bearer_auth(access_token).query(query);
        req = match body {
            Some(b) => req.json(b),
            // Spotify wants a length on body-less PUT/POST.
            None => req.header(reqwest::header::CONTENT_LENGTH, "0"),
        };
        let (answer, log) = self.send(API, method, path, req).await;
        self.record(Some(user_id), vec![log]).await;
        answer.map(|_| ())
    }

    /// The signed-in account.
    pub async fn me(&self, user_id: &str, access_token: &str) -> Result<wire::CurrentUser> {
        self.get(user_id, access_token, "/v1/me", &[]).await?.ok_or_else(|| no_body("/v1/me"))
    }

    /// One artist (with its genres). One call per artist: the batch `GET /v1/artists?ids=`
    /// was removed for development-mode apps in Feb 2026.
    pub async fn artist(&self, user_id: &str, access_token: &str, artist_id: &str) -> Result<wire::Artist> {
        // The id goes into the path: refuse anything that is not a Spotify id (base62).
        if artist_id.is_empty() || !artist_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::invalid(format!("not a Spotify artist id: {artist_id:?}")));
        }
        let path = format!("/v1/artists/{artist_id}");
        self.get(user_id, access_token, &path, &[]).await?.ok_or_else(|| no_body("/v1/artists/{id}"))
    }

    /// The last plays (at most 50, newest first), after `after_ms` (Unix ms, exclusive) when given.
    pub async fn recently_played(
        &self,
        user_id: &str,
        access_token: &str,
        limit: u32,
        after_ms: Option<i64>,
    ) -> Result<wire::RecentlyPlayed> {
        let mut q = vec![("limit", limit.clamp(1, 50).to_string())];
        if let Some(a) = after_ms {
            q.push(("after", a.to_string()));
        }
        Ok(self
            .get(user_id, access_token, "/v1/me/player/recently-played", &q)
            .await?
            .unwrap_or(wire::RecentlyPlayed { items: Vec::new() }))
    }

    /// A page of the user's playlists (`limit` 1-50).
    pub async fn playlists(
        &self,
        user_id: &str,
        access_token: &str,
        limit: u32,
        offset: u32,
    ) -> Result<wire::Paging<wire::SimplifiedPlaylist>> {
        let q = [("limit", limit.clamp(1, 50).to_string()), ("offset", offset.to_string())];
        self.get(user_id, access_token, "/v1/me/playlists", &q).await?.ok_or_else(|| no_body("/v1/me/playlists"))
    }

    /// Playback state; `None` when no device is active.
    pub async fn playback(&self, user_id: &str, access_token: &str) -> Result<Option<wire::PlaybackState>> {
        self.get(user_id, access_token, "/v1/me/player", &[]).await
    }

    /// Connect devices.
    pub async fn devices(&self, user_id: &str, access_token: &str) -> Result<wire::Devices> {
        Ok(self
            .get(user_id, access_token, "/v1/me/player/devices", &[])
            .await?
            .unwrap_or(wire::Devices { devices: vec![] }))
    }

    /// The queue; `None` when nothing plays.
    pub async fn queue(&self, user_id: &str, access_token: &str) -> Result<Option<wire::Queue>> {
        self.get(user_id, access_token, "/v1/me/player/queue", &[]).await
    }

    /// Followed artists (first page, `limit` 1-50).
    pub async fn followed_artists(
        &self,
        user_id: &str,
        access_token: &str,
        limit: u32,
    ) -> Result<wire::Paging<wire::Artist>> {
        let q = [("type", "artist".to_string()), ("limit", limit.clamp(1, 50).to_string())];
        let f: wire::FollowedArtists = self
            .get(user_id, access_token, "/v1/me/following", &q)
            .await?
            .ok_or_else(|| no_body("/v1/me/following"))?;
        Ok(f.artists)
    }

    /// A page of saved albums (`limit` 1-50).
    pub async fn saved_albums(
        &self,
        user_id: &str,
        access_token: &str,
        limit: u32,
        offset: u32,
    ) -> Result<wire::Paging<wire::SavedAlbum>> {
        let q = [("limit", limit.clamp(1, 50).to_string()), ("offset", offset.to_string())];
        self.get(user_id, access_token, "/v1/me/albums", &q).await?.ok_or_else(|| no_body("/v1/me/albums"))
    }

    /// New releases (removed for development-mode apps in Feb 2026: 403/404 then).
    pub async fn new_releases(
        &self,
        user_id: &str,
        access_token: &str,
        limit: u32,
    ) -> Result<wire::Paging<wire::Album>> {
        let q = [("limit", limit.clamp(1, 50).to_string())];
        let r: wire::NewReleases = self
            .get(user_id, access_token, "/v1/browse/new-releases", &q)
            .await?
            .ok_or_else(|| no_body("/v1/browse/new-releases"))?;
        Ok(r.albums)
    }

    /// Browse categories (removed for development-mode apps in Feb 2026: 403/404 then).
    pub async fn categories(
        &self,
        user_id: &str,
        access_token: &str,
        limit: u32,
    ) -> Result<wire::Paging<wire::Category>> {
        let q = [("limit", limit.clamp(1, 50).to_string())];
        let r: wire::Categories = self
            .get(user_id, access_token, "/v1/browse/categories", &q)
            .await?
            .ok_or_else(|| no_body("/v1/browse/categories"))?;
        Ok(r.categories)
    }

    /// Sends one request and maps the answer; returns the log entry (without a user) too.
    /// `path` is what the log shows: never the query string, which can hold a code.
    async fn send(
        &self,
        service: &str,
        method: Method,
        path: &str,
        req: RequestBuilder,
    ) -> (Result<Answer>, ApiCallLog) {
        let mut log = ApiCallLog {
            id: log_id(),
            user_id: None,
            service: service.into(),
            method: method.as_str().into(),
            endpoint: path.into(),
            status_code: 0,
            latency_ms: 0.0,
            error: None,
            timestamp: Utc::now(),
        };
        if let Some(wait) = self.blocked_for() {
            log.status_code = 429;
            log.error = Some("not sent: waiting for an earlier Retry-After".into());
            return (Err(Error::RateLimited { retry_after: Some(wait) }), log);
        }
        let started = Instant::now();
        let result = async {
            let resp = req.send().await.map_err(ClientError::from)?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = resp.bytes().await.map_err(ClientError::from)?.to_vec();
            Ok::<_, Error>((status, retry_after, body))
        }
        .await;
        log.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let answer = match result {
            Err(e) => Err(e),
            Ok((status, retry_after, body)) => {
                log.status_code = i32::from(status);
                match status {
                    200..=299 => Ok(Answer { status, body }),
                    429 => {
                        if let Some(wait) = retry_after {
                            *self.blocked_until.lock().expect("rate-limit state") = Some(Instant::now() + wait);
                        }
                        Err(Error::RateLimited { retry_after })
                    }
                    401 if service == API => Err(Error::Unauthenticated),
                    _ => Err(Error::Spotify { status, message: error_message(status, &body) }),
                }
            }
        };
        if let Err(e) = &answer {
            log.error = Some(e.to_string());
        }
        (answer, log)
    }

    /// How long calls must still wait after a 429, if at all.
    fn blocked_for(&self) -> Option<Duration> {
        let mut blocked = self.blocked_until.lock().expect("rate-limit state");
        match *blocked {
            Some(until) if until > Instant::now() => Some(until - Instant::now()),
            Some(_) => {
                *blocked = None;
                None
            }
            None => None,
        }
    }

    /// Writes log entries for `user_id`. A failure to log is reported, never the caller's error.
    async fn record(&self, user_id: Option<&str>, mut logs: Vec<ApiCallLog>) {
        for l in &mut logs {
            l.user_id = user_id.map(str::to_string);
        }
        if let Err(e) = self.store.log_api_calls(&logs).await {
            tracing::warn!(error = %e, "cannot log Spotify API calls");
        }
    }
}

fn no_body(path: &str) -> Error {
    Error::Spotify { status: 204, message: format!("{path} answered without a body") }
}

fn decode<T: DeserializeOwned>(answer: Answer) -> Result<Option<T>> {
    if answer.status == 204 || answer.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    Ok(Some(serde_json::from_slice(&answer.body).map_err(ClientError::from)?))
}

/// Spotify's own words for an error, else the status.
fn error_message(status: u16, body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error: ErrorField::Api { message, reason }, .. }) => {
            let m = message.unwrap_or_else(|| format!("HTTP {status}"));
            match reason {
                Some(r) => format!("{m} ({r})"),
                None => m,
            }
        }
        Ok(ErrorBody { error: ErrorField::Code(code), error_description }) => match error_description {
            Some(d) => format!("{code}: {d}"),
            None => code,
        },
        Err(_) => format!("HTTP {status}"),
    }
}
