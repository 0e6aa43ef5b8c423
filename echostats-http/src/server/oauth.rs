//! The server side of Spotify OAuth: logins in progress (state and PKCE verifier, 10
//! minutes, in memory) and a user's access token, refreshed when it is about to expire and
//! stored sealed again.

use crate::app::AppState;
use crate::crypto::TokenKey;
use base64::Engine;
use echostats::spotify::{SpotifyClient, TokenSet};
use echostats::Error;
use rand::RngCore;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a login may take between `/auth/login` and `/auth/callback`.
pub const LOGIN_TTL: Duration = Duration::from_secs(10 * 60);
/// Logins kept at most (the login route needs no session, so the map must be bounded).
const MAX_PENDING: usize = 10_000;
/// An access token this close to expiry is refreshed before use.
const REFRESH_MARGIN_SECS: i64 = 60;

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// Logins in progress: state → (PKCE verifier, started).
#[derive(Default)]
pub struct PendingLogins(Mutex<HashMap<String, (String, Instant)>>);

impl PendingLogins {
    /// A new login: its state and PKCE verifier (43 characters of base64url).
    pub fn start(&self) -> (String, String) {
        let state = random_token(24);
        let verifier = random_token(32);
        let mut pending = self.0.lock().expect("pending logins");
        pending.retain(|_, (_, started)| started.elapsed() < LOGIN_TTL);
        if pending.len() >= MAX_PENDING {
            if let Some(oldest) = pending.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| k.clone()) {
                pending.remove(&oldest);
            }
        }
        pending.insert(state.clone(), (verifier.clone(), Instant::now()));
        (state, verifier)
    }

    /// The verifier of `state`, once: unknown, used or expired states give `None`.
    pub fn finish(&self, state: &str) -> Option<String> {
        let (verifier, started) = self.0.lock().expect("pending logins").remove(state)?;
        (started.elapsed() < LOGIN_TTL).then_some(verifier)
    }
}

/// The Spotify client and the token key, or 501 when the server runs without Spotify.
pub fn spotify(state: &AppState) -> echostats::Result<(&Arc<SpotifyClient>, &TokenKey)> {
    match (&state.spotify, &state.config.encryption_key) {
        (Some(client), Some(key)) => Ok((client, key)),
        _ => Err(Error::NotSupported {
            what: "Spotify is not configured on this server (set SPOTIFY_CLIENT_ID, SPOTIFY_CLIENT_SECRET and \
                   ENCRYPTION_KEY)"
                .into(),
        }),
    }
}

/// Seals and stores `tokens` for `user_id`.
pub async fn store_tokens(state: &AppState, key: &TokenKey, user_id: &str, tokens: &TokenSet) -> echostats::Result<()> {
    state.store.set_tokens(user_id, Some(&key.seal(tokens))).await
}

/// The user's tokens, opened. 401 when the user never connected Spotify or the tokens
/// were sealed under another key (sign in with Spotify again).
async fn open_tokens(state: &AppState, key: &TokenKey, user_id: &str) -> echostats::Result<TokenSet> {
    let sealed = match state.store.tokens(user_id).await {
        Ok(Some(t)) => t,
        Ok(None) | Err(Error::NotFound { .. }) => return Err(Error::Unauthenticated),
        Err(e) => return Err(e),
    };
    key.open(&sealed).ok_or_else(|| {
        tracing::warn!(user = %user_id, "stored Spotify tokens do not open under ENCRYPTION_KEY; sign in again");
        Error::Unauthenticated
    })
}

/// One lock per user around token refreshes, so that concurrent requests with an expiring
/// token refresh it once: Spotify may rotate the refresh token, and a second refresh with
/// the old one can fail or store stale tokens over fresh ones.
#[derive(Default)]
pub struct RefreshLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl RefreshLocks {
    fn of(&self, user_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.0.lock().expect("refresh locks");
        // Drop the locks nobody holds or waits for, so the map stays as small as the set
        // of users refreshing right now.
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(user_id.to_string()).or_default().clone()
    }
}

/// Refreshes the user's access token now and stores the result.
pub async fn refresh(state: &AppState, user_id: &str) -> echostats::Result<TokenSet> {
    let (client, key) = spotify(state)?;
    let lock = state.refresh_locks.of(user_id);
    let _held = lock.lock().await;
    let tokens = open_tokens(state, key, user_id).await?;
    let fresh = client.refresh(user_id, &tokens).await?;
    store_tokens(state, key, user_id, &fresh).await?;
    Ok(fresh)
}

/// The client and a valid access token of `user_id`, refreshed first when it expires
/// within a minute (once, however many requests ask at the same time).
pub async fn access_token(state: &AppState, user_id: &str) -> echostats::Result<(Arc<SpotifyClient>, String)> {
    let (client, key) = spotify(state)?;
    let client = client.clone();
    let margin = chrono::Duration::seconds(REFRESH_MARGIN_SECS);
    let tokens = open_tokens(state, key, user_id).await?;
    if !tokens.expires_within(margin) {
        return Ok((client, tokens.access_token));
    }
    let lock = state.refresh_locks.of(user_id);
    let _held = lock.lock().await;
    // Whoever held the lock before may have refreshed already.
    let tokens = open_tokens(state, key, user_id).await?;
    if !tokens.expires_within(margin) {
        return Ok((client, tokens.access_token));
    }
    let fresh = client.refresh(user_id, &tokens).await?;
    store_tokens(state, key, user_id, &fresh).await?;
    Ok((client, fresh.access_token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_is_good_once() {
        let logins = PendingLogins::default();
        let (state, verifier) = logins.start();
        assert!((43..=128).contains(&verifier.len()), "PKCE verifier length {}", verifier.len());
        assert_eq!(logins.finish("unknown"), None);
        assert_eq!(logins.finish(&state), Some(verifier));
        assert_eq!(logins.finish(&state), None, "used");
    }
}
