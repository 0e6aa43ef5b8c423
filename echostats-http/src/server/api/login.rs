//! Spotify sign-in: `login` (authorization code with PKCE and state), `callback` (code →
//! tokens, user, session) and `refresh` (a new Spotify access token).

use super::ApiTags;
use crate::app::AppState;
use crate::auth::{is_https, CurrentUser};
use crate::error::{ApiError, Detail};
use crate::spotify_dto::LoginUrl;
use crate::{jobs, oauth};
use echostats::spotify::wire::first_image;
use echostats::{Error, JobType, User};
use poem::http::header;
use poem::web::Data;
use poem::Request;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use std::sync::Arc;

pub struct SpotifyLoginApi;

#[derive(ApiResponse)]
enum LoginStart {
    /// API clients: the Spotify authorization URL and the state the callback will expect.
    #[oai(status = 200)]
    Url(Json<LoginUrl>),
    /// Browsers (`Accept: text/html`): to the Spotify authorization page.
    #[oai(status = 302)]
    Redirect(#[oai(header = "Location")] String),
}

#[derive(ApiResponse)]
enum CallbackResponse {
    /// Signed in: to `{frontend_url}/auth/callback?status=success`, with the session cookie.
    #[oai(status = 302)]
    Redirect(#[oai(header = "Location")] String, #[oai(header = "Set-Cookie")] String),
    /// Spotify refused, or the state is unknown, used or older than 10 minutes.
    #[oai(status = 400)]
    BadRequest(Json<Detail>),
}

fn bad_request(msg: impl Into<String>) -> CallbackResponse {
    CallbackResponse::BadRequest(Json(Detail { detail: msg.into() }))
}

#[OpenApi(tag = "ApiTags::Auth")]
impl SpotifyLoginApi {
    /// Starts the Spotify sign-in (authorization code with PKCE). Browsers (`Accept:
    /// text/html`) are redirected to Spotify; API clients get `{url, state}`. The state is
    /// good for 10 minutes, once.
    #[oai(path = "/api/v1/auth/login", method = "get")]
    async fn login(&self, state: Data<&Arc<AppState>>, req: &Request) -> Result<LoginStart, ApiError> {
        let (client, _) = oauth::spotify(&state)?;
        let (login_state, verifier) = state.logins.start();
        let url = client.authorize_url(&login_state, &verifier);
        let wants_html =
            req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"));
        Ok(if wants_html {
            LoginStart::Redirect(url)
        } else {
            LoginStart::Url(Json(LoginUrl { url, state: login_state }))
        })
    }

    /// Where Spotify sends the browser back: checks the state, exchanges the code (with the
    /// PKCE verifier), creates or updates the user (id = Spotify user id), stores the sealed
    /// tokens and sets the session cookie.
    #[oai(path = "/api/v1/auth/callback", method = "get")]
    async fn callback(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        /// Authorization code from Spotify.
        code: Query<Option<String>>,
        /// The state `login` gave out.
        #[oai(name = "state")]
        login_state: Query<Option<String>>,
        /// Error returned by Spotify (`access_denied`).
        error: Query<Option<String>>,
    ) -> Result<CallbackResponse, ApiError> {
        let (client, key) = oauth::spotify(&state)?;
        // The state goes first, so a forged callback learns nothing else.
        let verifier = match login_state.0.as_deref().and_then(|s| state.logins.finish(s)) {
            Some(v) => v,
            None => return Ok(bad_request("Invalid or expired OAuth state: start again at /api/v1/auth/login")),
        };
        if let Some(e) = error.0 {
            return Ok(bad_request(format!("Spotify authorization failed: {e}")));
        }
        let Some(code) = code.0.filter(|c| !c.is_empty()) else {
            return Ok(bad_request("Missing authorization code"));
        };
        let connected = match client.connect(&code, &verifier).await {
            Ok(c) => c,
            Err(Error::Unauthenticated) => {
                return Ok(bad_request("Spotify rejected the authorization code: start again at /api/v1/auth/login"))
            }
            Err(e) => return Err(e.into()),
        };
        let profile = connected.profile;
        let existing = match state.store.user(&profile.id).await {
            Ok(u) => Some(u),
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let user = User {
            id: profile.id.clone(),
            spotify_id: Some(profile.id.clone()),
            display_name: profile
                .display_name
                .clone()
                .or_else(|| existing.as_ref().and_then(|u| u.display_name.clone())),
            image_url: first_image(&profile.images).or_else(|| existing.as_ref().and_then(|u| u.image_url.clone())),
            // Removed from /v1/me for development-mode apps in Feb 2026: keep what we knew.
            product: profile.product.clone().or_else(|| existing.as_ref().and_then(|u| u.product.clone())),
            created_at: existing.as_ref().map(|u| u.created_at).unwrap_or_else(chrono::Utc::now),
        };
        state.store.upsert_user(&user).await?;
        oauth::store_tokens(&state, key, &user.id, &connected.tokens).await?;
        let (token, _) = state.sessions.issue(&user.id)?;
        let cookie = state.sessions.cookie(&token, is_https(req));
        tracing::info!(user = %user.id, "signed in with Spotify");
        // The first sync runs in the background; the browser does not wait for it.
        if let Err(e) = jobs::start_sync(&state, &user.id, JobType::Initial).await {
            tracing::error!(user = %user.id, error = %e, "cannot start the initial sync");
        }
        let location = format!("{}/auth/callback?status=success", state.config.frontend_url.trim_end_matches('/'));
        Ok(CallbackResponse::Redirect(location, cookie))
    }

    /// Refreshes the Spotify access token with the stored refresh token. 401 when not
    /// signed in, not connected to Spotify, or when Spotify refuses the refresh token.
    #[oai(path = "/api/v1/auth/refresh", method = "post")]
    async fn refresh(
        &self,
        state: Data<&Arc<AppState>>,
        user: CurrentUser,
    ) -> Result<Json<crate::dto::Status>, ApiError> {
        oauth::refresh(&state, user.id()).await?;
        Ok(Json(crate::dto::Status { status: "refreshed".into() }))
    }
}
