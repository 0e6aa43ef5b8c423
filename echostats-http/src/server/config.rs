//! Server configuration: typed, with the EchoStats defaults. The `echostats serve` command
//! fills it from flags and environment variables (see `cli.rs`).

use crate::crypto::TokenKey;
use echostats::spotify::SpotifyConfig;
use echostats::PlayRules;
use std::time::Duration;

/// HS256 secrets shorter than this are refused: they can be brute-forced from one token.
pub const MIN_JWT_SECRET_LEN: usize = 32;

/// Requests allowed per client IP in a window (a GCRA bucket: `requests` at once, refilled
/// evenly over `window`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per window (at least 1).
    pub requests: u32,
    /// The window.
    pub window: Duration,
}

impl Default for RateLimit {
    /// EchoStats: 100 requests per 60 s.
    fn default() -> Self {
        RateLimit { requests: 100, window: Duration::from_secs(60) }
    }
}

/// Everything the server needs besides the store.
#[derive(Clone)]
pub struct ServerConfig {
    /// Address to listen on (`127.0.0.1:8000`; port 0 picks a free port).
    pub bind: String,
    /// Key of the HS256 session tokens.
    pub jwt_secret: Vec<u8>,
    /// How long a session token is valid.
    pub session_ttl: Duration,
    /// Whether `/api/v1/auth/dev-login` exists (404 otherwise).
    pub dev_login: bool,
    /// The user dev-login signs in when the request names none.
    pub dev_login_user: String,
    /// Requests without a session act as the only user when exactly one exists.
    pub single_user_auto_login: bool,
    /// Per-client-IP rate limit; `None` turns it off.
    pub rate_limit: Option<RateLimit>,
    /// Take the client IP from `X-Forwarded-For` (only behind a proxy that sets it).
    pub trust_proxy: bool,
    /// Time limit of a request.
    pub request_timeout: Duration,
    /// Time limit of the slow routes (rollup build, import, export).
    pub slow_request_timeout: Duration,
    /// Origins allowed by CORS (with credentials); empty: no cross-origin access.
    pub cors_origins: Vec<String>,
    /// Play rules used when rebuilding rollups.
    pub rules: PlayRules,
    /// Finished jobs and API call logs older than this are deleted (hourly).
    pub retention: Duration,
    /// How long a computed overview may be served again (writes of this process
    /// invalidate it at once; this bounds how late writes of other processes show).
    pub overview_max_age: Duration,
    /// Largest history upload accepted (`POST /api/v1/history/import`), in bytes.
    pub max_upload_bytes: u64,
    /// Where uploads are kept while they are imported; `None`: the system's temporary
    /// directory.
    pub upload_dir: Option<std::path::PathBuf>,
    /// The Spotify app (client id and secret, redirect URI, accounts and API URLs);
    /// `None`: no Spotify sign-in, the Spotify-backed routes answer 501.
    pub spotify: Option<SpotifyConfig>,
    /// The key that seals Spotify tokens at rest (`ENCRYPTION_KEY`); required with `spotify`.
    pub encryption_key: Option<TokenKey>,
    /// Where the OAuth callback sends the browser: `{frontend_url}/auth/callback?status=success`.
    pub frontend_url: String,
    /// How often every user connected to Spotify is synced (recently played tracks);
    /// `None`: only on sign-in and `POST /api/v1/sync-jobs/trigger`.
    pub sync_interval: Option<Duration>,
    /// Redis, when the deployment has one: `/api/health/ready` then checks it too.
    pub redis_url: Option<String>,
    /// A GitHub "latest release" API URL for `/api/health/update`; `None`: no check.
    pub releases_url: Option<String>,
}

impl std::fmt::Debug for ServerConfig {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("bind", &self.bind)
            .field("jwt_secret", &"<redacted>")
            .field("session_ttl", &self.session_ttl)
            .field("dev_login", &self.dev_login)
            .field("dev_login_user", &self.dev_login_user)
            .field("single_user_auto_login", &self.single_user_auto_login)
            .field("rate_limit", &self.rate_limit)
            .field("trust_proxy", &self.trust_proxy)
            .field("request_timeout", &self.request_timeout)
            .field("slow_request_timeout", &self.slow_request_timeout)
            .field("cors_origins", &self.cors_origins)
            .field("rules", &self.rules)
            .field("retention", &self.retention)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("upload_dir", &self.upload_dir)
            .field("spotify", &self.spotify)
            .field("encryption_key", &self.encryption_key.as_ref().map(|_| "<redacted>"))
            .field("frontend_url", &self.frontend_url)
            .field("sync_interval", &self.sync_interval)
            // A Redis URL can carry a password.
            .field("redis_url", &self.redis_url.as_ref().map(|_| "<redacted>"))
            .field("releases_url", &self.releases_url)
            .finish()
    }
}

impl ServerConfig {
    /// The EchoStats defaults with the given session key: `127.0.0.1:8000`, sessions of 7
    /// days, no dev-login, 100 requests per 60 s, timeouts of 30 s (120 s for slow routes),
    /// CORS for the dashboard at `http://localhost:3000`, jobs and API logs kept 30 days,
    /// uploads up to 1 GiB, a Spotify sync every 15 minutes, no Redis, no release check.
    pub fn new(jwt_secret: Vec<u8>) -> Self {
        ServerConfig {
            bind: "127.0.0.1:8000".into(),
            jwt_secret,
            session_ttl: Duration::from_secs(7 * 24 * 3600),
            dev_login: false,
            dev_login_user: "local".into(),
            single_user_auto_login: false,
            rate_limit: Some(RateLimit::default()),
            trust_proxy: false,
            request_timeout: Duration::from_secs(30),
            slow_request_timeout: Duration::from_secs(120),
            cors_origins: vec!["http://localhost:3000".into()],
            rules: PlayRules::default(),
            retention: Duration::from_secs(30 * 24 * 3600),
            overview_max_age: Duration::from_secs(60),
            max_upload_bytes: 1 << 30,
            upload_dir: None,
            spotify: None,
            encryption_key: None,
            frontend_url: "/".into(),
            sync_interval: Some(Duration::from_secs(15 * 60)),
            redis_url: None,
            releases_url: None,
        }
    }

    /// Checks what would make the server unsafe or unable to start.
    pub fn validate(&self) -> Result<(), String> {
        if self.jwt_secret.len() < MIN_JWT_SECRET_LEN {
            return Err(format!(
                "the JWT secret is {} bytes; it must be at least {MIN_JWT_SECRET_LEN} (generate one with `openssl rand -hex 32`)",
                self.jwt_secret.len()
            ));
        }
        if let Some(r) = self.rate_limit {
            if r.requests == 0 || r.window.is_zero() {
                return Err("the rate limit needs at least 1 request in a window longer than 0 s".into());
            }
        }
        if self.request_timeout.is_zero() || self.slow_request_timeout.is_zero() {
            return Err("request timeouts must be longer than 0 s".into());
        }
        if self.retention.is_zero() {
            return Err("the retention of jobs and API logs must be longer than 0 s".into());
        }
        if self.spotify.is_some() && self.encryption_key.is_none() {
            return Err("Spotify sign-in needs ENCRYPTION_KEY to seal the tokens it stores: 32 bytes as base64 or \
                        hex (generate one with `openssl rand -base64 32`)"
                .into());
        }
        if self.sync_interval.is_some_and(|d| d < Duration::from_secs(1)) {
            return Err("the Spotify sync interval must be at least a second (or off)".into());
        }
        if let Some(url) = &self.redis_url {
            // The URL can hold a password: say what is wrong, not what it is.
            redis::Client::open(url.as_str()).map_err(|e| format!("the Redis URL is not valid: {e}"))?;
        }
        if let Some(url) = &self.releases_url {
            reqwest::Url::parse(url).map_err(|e| format!("the releases URL {url:?} is not valid: {e}"))?;
        }
        crate::auth::validate_user_id(&self.dev_login_user)
            .map_err(|e| format!("dev-login user {:?}: {e}", self.dev_login_user))?;
        Ok(())
    }
}
