//! Sessions: an HS256 JWT naming the user, in an `HttpOnly`, `SameSite=Lax` cookie named
//! `session` (`Secure` over HTTPS), or as `Authorization: Bearer`. [`CurrentUser`] is the
//! extractor every data route takes: it resolves the session (or the single-user
//! auto-login) and answers 401 `Not authenticated` otherwise.

use crate::app::AppState;
use crate::error::ApiError;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use poem::http::header;
use poem::web::cookie::{Cookie, SameSite};
use poem::{Request, RequestBody};
use poem_openapi::registry::{MetaSecurityScheme, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Name of the session cookie (as EchoStats).
pub const SESSION_COOKIE: &str = "session";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// Our user id.
    sub: String,
    iat: i64,
    exp: i64,
}

/// Issues and checks session tokens.
pub struct Sessions {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl Sessions {
    /// Sessions signed with `secret`, valid for `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Sessions {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    /// A token for `user_id` and when it expires.
    pub fn issue(&self, user_id: &str) -> Result<(String, DateTime<Utc>), ApiError> {
        let now = Utc::now();
        let exp = now + chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::days(7));
        let claims = Claims { sub: user_id.to_string(), iat: now.timestamp(), exp: exp.timestamp() };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(|e| {
            tracing::error!(error = %e, "cannot sign a session token");
            ApiError::internal()
        })?;
        Ok((token, exp))
    }

    /// The user id of a valid, unexpired token.
    pub fn verify(&self, token: &str) -> Option<String> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok().map(|d| d.claims.sub)
    }

    /// The `Set-Cookie` value that stores `token`.
    pub fn cookie(&self, token: &str, secure: bool) -> String {
        session_cookie(token, self.ttl, secure)
    }
}

fn session_cookie(value: &str, max_age: Duration, secure: bool) -> String {
    let mut c = Cookie::new_with_str(SESSION_COOKIE, value);
    c.set_http_only(true);
    c.set_same_site(SameSite::Lax);
    c.set_path("/");
    c.set_max_age(max_age);
    c.set_secure(secure);
    c.to_string()
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn removal_cookie(secure: bool) -> String {
    session_cookie("", Duration::ZERO, secure)
}

/// Whether the request reached us over HTTPS (directly or through a proxy that says so).
pub fn is_https(req: &Request) -> bool {
    req.scheme() == &poem::http::uri::Scheme::HTTPS
        || req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("https")))
}

/// The session token of a request: `Authorization: Bearer` first, then the cookie.
fn request_token(req: &Request) -> Option<&str> {
    if let Some(authorization) = req.headers().get(header::AUTHORIZATION) {
        // Explicit credentials decide alone: a malformed or non-Bearer header is no
        // session, even next to a valid cookie.
        return authorization
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
    }
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.is_empty())
        .map(|(_, value)| value)
}

/// The user of a request: a valid session token, else (when enabled) the only user of the
/// store, else `None`.
pub async fn resolve_user(state: &AppState, req: &Request) -> Result<Option<String>, ApiError> {
    if let Some(user) = request_token(req).and_then(|t| state.sessions.verify(t)) {
        return Ok(Some(user));
    }
    if state.config.single_user_auto_login {
        let mut users = state.store.users().await?;
        if users.len() == 1 {
            return Ok(users.pop().map(|u| u.id));
        }
    }
    Ok(None)
}

/// Checks a user id given by a client or the configuration.
pub fn validate_user_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err("expected 1 to 64 characters of letters, digits, '_', '-', '.' or '@'".into())
    }
}

/// The signed-in user of a request (extractor): 401 `Not authenticated` without one.
/// Documented in the spec as the `session` cookie or a bearer token.
pub struct CurrentUser(pub String);

impl CurrentUser {
    /// The user id.
    pub fn id(&self) -> &str {
        &self.0
    }
}

const COOKIE_SCHEME: &str = "SessionCookie";
const BEARER_SCHEME: &str = "BearerToken";

impl<'a> ApiExtractor<'a> for CurrentUser {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            COOKIE_SCHEME,
            MetaSecurityScheme {
                ty: "apiKey",
                description: Some("The HttpOnly `session` cookie set by the login routes."),
                name: Some(SESSION_COOKIE),
                key_in: Some("cookie"),
                scheme: None,
                bearer_format: None,
                flows: None,
                openid_connect_url: None,
            },
        );
        registry.create_security_scheme(
            BEARER_SCHEME,
            MetaSecurityScheme {
                ty: "http",
                description: Some("The same session token as `Authorization: Bearer <token>`."),
                name: None,
                key_in: None,
                scheme: Some("bearer"),
                bearer_format: Some("JWT"),
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![COOKIE_SCHEME, BEARER_SCHEME]
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let state = req.data::<Arc<AppState>>().expect("AppState is added to every route");
        match resolve_user(state, req).await? {
            Some(user) => Ok(CurrentUser(user)),
            None => Err(ApiError::unauthenticated().into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let s = Sessions::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60));
        let (token, exp) = s.issue("alice").unwrap();
        assert!(exp > Utc::now());
        assert_eq!(s.verify(&token).as_deref(), Some("alice"));
        let other = Sessions::new(b"another secret of 32 bytes......", Duration::from_secs(60));
        assert_eq!(other.verify(&token), None, "signed with another key");
        assert_eq!(s.verify("not.a.token"), None);
    }

    #[test]
    fn expired_tokens_are_refused() {
        let s = Sessions::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60));
        let past = Utc::now().timestamp() - 3600;
        let claims = Claims { sub: "alice".into(), iat: past - 60, exp: past };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &s.encoding).unwrap();
        assert_eq!(s.verify(&token), None);
    }

    #[test]
    fn cookies_are_http_only_and_lax() {
        let c = session_cookie("tok", Duration::from_secs(60), false);
        assert!(c.starts_with("session=tok"), "{c}");
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Path=/"), "{c}");
        assert!(!c.contains("Secure"), "{c}");
        assert!(session_cookie("tok", Duration::from_secs(60), true).contains("Secure"));
    }

    #[test]
    fn user_ids_are_checked() {
        assert!(validate_user_id("demo").is_ok());
        assert!(validate_user_id("a.b-c_d@e").is_ok());
        assert!(validate_user_id("").is_err());
        assert!(validate_user_id("a b").is_err());
        assert!(validate_user_id(&"x".repeat(65)).is_err());
    }
}
