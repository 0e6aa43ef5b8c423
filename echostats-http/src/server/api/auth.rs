//! Sessions: `dev-login` (when enabled), `status`, `logout`. The Spotify OAuth flow
//! (`login`, `callback`, `refresh`) is in `login.rs`.

use super::ApiTags;
use crate::app::AppState;
use crate::auth::{is_https, removal_cookie, resolve_user, validate_user_id};
use crate::dto::{AuthStatus, DevLogin, LoginUser, StatusUser};
use crate::error::ApiError;
use echostats::{Error, User};
use poem::web::Data;
use poem::Request;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, OpenApi};
use std::sync::Arc;

pub struct AuthApi;

#[derive(ApiResponse)]
enum LoginResponse {
    /// Signed in; the session cookie is set.
    #[oai(status = 200)]
    Ok(Json<DevLogin>, #[oai(header = "Set-Cookie")] String),
}

#[derive(ApiResponse)]
enum LogoutResponse {
    /// Signed out; the session cookie is removed.
    #[oai(status = 200)]
    Ok(Json<crate::dto::Status>, #[oai(header = "Set-Cookie")] String),
}

#[OpenApi(tag = "ApiTags::Auth")]
impl AuthApi {
    /// Signs in without Spotify, for development and the demo: only when the server runs
    /// with `--dev-login` (or `--demo`), 404 otherwise. Creates the user if missing.
    #[oai(path = "/api/v1/auth/dev-login", method = "get", method = "post")]
    async fn dev_login(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        /// Whom to sign in (default: the server's dev-login user).
        #[oai(validator(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9_.@-]+$"))]
        user: Query<Option<String>>,
    ) -> Result<LoginResponse, ApiError> {
        if !state.config.dev_login {
            return Err(ApiError::not_found("Not Found"));
        }
        let id = user.0.unwrap_or_else(|| state.config.dev_login_user.clone());
        validate_user_id(&id).map_err(|msg| ApiError::invalid("query", "user", msg))?;
        let user = match state.store.user(&id).await {
            Ok(u) => u,
            Err(Error::NotFound { .. }) => {
                let u = User {
                    id: id.clone(),
                    spotify_id: None,
                    display_name: Some(id.clone()),
                    image_url: None,
                    product: None,
                    created_at: chrono::Utc::now(),
                };
                state.store.upsert_user(&u).await?;
                u
            }
            Err(e) => return Err(e.into()),
        };
        let (token, _expires) = state.sessions.issue(&user.id)?;
        let cookie = state.sessions.cookie(&token, is_https(req));
        Ok(LoginResponse::Ok(
            Json(DevLogin {
                status: "authenticated".into(),
                user: LoginUser { id: user.id, spotify_id: user.spotify_id, display_name: user.display_name },
                token,
            }),
            cookie,
        ))
    }

    /// Whether the request is signed in, and as whom.
    #[oai(path = "/api/v1/auth/status", method = "get")]
    async fn status(&self, state: Data<&Arc<AppState>>, req: &Request) -> Result<Json<AuthStatus>, ApiError> {
        let not_authenticated = || {
            Json(AuthStatus {
                authenticated: false,
                user: MaybeUndefined::Undefined,
                token_expires_at: MaybeUndefined::Undefined,
            })
        };
        let Some(id) = resolve_user(&state, req).await? else { return Ok(not_authenticated()) };
        let user = match state.store.user(&id).await {
            Ok(u) => u,
            // A valid token of a user that no longer exists.
            Err(Error::NotFound { .. }) => return Ok(not_authenticated()),
            Err(e) => return Err(e.into()),
        };
        let tokens = state.store.tokens(&user.id).await?;
        Ok(Json(AuthStatus {
            authenticated: true,
            user: MaybeUndefined::Value(StatusUser::from(user)),
            token_expires_at: MaybeUndefined::from_opt_null(tokens.map(|t| t.expires_at.into())),
        }))
    }

    /// Signs out: removes the session cookie.
    #[oai(path = "/api/v1/auth/logout", method = "post")]
    async fn logout(&self, req: &Request) -> LogoutResponse {
        LogoutResponse::Ok(Json(crate::dto::Status { status: "logged_out".into() }), removal_cookie(is_https(req)))
    }
}
