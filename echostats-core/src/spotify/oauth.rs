//! OAuth pieces that need no network: scopes, the PKCE S256 challenge, the token set.

use super::wire::CurrentUser;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The scopes EchoStats asks for: recently played and top items (sync, analytics),
/// playlists, library and follows, and the player (read and control).
pub const SCOPES: &[&str] = &[
    "user-read-recently-played",
    "user-top-read",
    "user-read-playback-state",
    "user-read-currently-playing",
    "user-modify-playback-state",
    "playlist-read-private",
    "playlist-read-collaborative",
    "user-library-read",
    "user-follow-read",
];

/// The PKCE S256 challenge of `verifier`: base64url (no padding) of its SHA-256.
pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A user's Spotify tokens in the clear. Callers seal it before it reaches a store
/// ([`crate::EncryptedTokens`]); `Debug` never prints the tokens.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenSet {
    /// Bearer token for the Web API (1 h).
    pub access_token: String,
    /// Token that gets a new access token.
    pub refresh_token: String,
    /// When the access token expires.
    pub expires_at: DateTime<Utc>,
    /// Granted scopes, space-separated.
    #[serde(default)]
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish()
    }
}

impl TokenSet {
    /// Whether the access token expires within `margin` from now (refresh it first then).
    pub fn expires_within(&self, margin: chrono::Duration) -> bool {
        self.expires_at <= Utc::now() + margin
    }
}

/// The result of the OAuth callback: the tokens and who they belong to.
#[derive(Debug, Clone)]
pub struct Connected {
    /// The tokens.
    pub tokens: TokenSet,
    /// The Spotify account (`GET /v1/me`).
    pub profile: CurrentUser,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn token_sets_do_not_print_tokens() {
        let t = TokenSet {
            access_token: "secret-access".into(),
            refresh_token: "secret-refresh".into(),
            expires_at: Utc::now(),
            scope: None,
        };
        let printed = format!("{t:?}");
        assert!(!printed.contains("secret"), "{printed}");
    }
}
