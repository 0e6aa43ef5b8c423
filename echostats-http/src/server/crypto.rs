//! Spotify tokens at rest: AES-256-GCM under `ENCRYPTION_KEY`, a random 96-bit nonce per
//! seal. The sealed form is `nonce ‖ ciphertext ‖ tag` of the JSON token set; it is what
//! the store keeps ([`EncryptedTokens`]). Tokens are never logged and never returned.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use echostats::spotify::TokenSet;
use echostats::EncryptedTokens;

const NONCE_LEN: usize = 12;

/// The 32-byte key that seals Spotify tokens.
#[derive(Clone)]
pub struct TokenKey([u8; 32]);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

impl TokenKey {
    /// Reads `ENCRYPTION_KEY`: 32 bytes as 64 hex digits or as base64 (standard or URL-safe,
    /// padded or not). Anything else is refused with a message saying how to make one.
    pub fn parse(text: &str) -> Result<TokenKey, String> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).ok()
        } else {
            use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
            [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD].iter().find_map(|e| e.decode(text).ok())
        };
        match bytes {
            Some(b) if b.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&b);
                Ok(TokenKey(key))
            }
            Some(b) => Err(format!(
                "ENCRYPTION_KEY decodes to {} bytes; it must be 32 (generate one with `openssl rand -base64 32`)",
                b.len()
            )),
            None => Err("ENCRYPTION_KEY is neither 64 hex digits nor base64 of 32 bytes \
                 (generate one with `openssl rand -base64 32`)"
                .into()),
        }
    }

    /// A random key (demo mode: sealed tokens cannot be read after a restart).
    pub fn random() -> TokenKey {
        TokenKey(Aes256Gcm::generate_key(&mut OsRng).into())
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0))
    }

    /// Seals `tokens` with a fresh random nonce.
    pub fn seal(&self, tokens: &TokenSet) -> EncryptedTokens {
        let plain = serde_json::to_vec(tokens).expect("a token set serializes");
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self.cipher().encrypt(&nonce, plain.as_slice()).expect("AES-GCM seals any length we use");
        let mut ciphertext = Vec::with_capacity(NONCE_LEN + sealed.len());
        ciphertext.extend_from_slice(&nonce);
        ciphertext.extend_from_slice(&sealed);
        EncryptedTokens { ciphertext, expires_at: tokens.expires_at }
    }

    /// Opens sealed tokens; `None` when they were sealed under another key or altered
    /// (the user has to sign in with Spotify again).
    pub fn open(&self, sealed: &EncryptedTokens) -> Option<TokenSet> {
        if sealed.ciphertext.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, body) = sealed.ciphertext.split_at(NONCE_LEN);
        let plain = self.cipher().decrypt(Nonce::from_slice(nonce), body).ok()?;
        serde_json::from_slice(&plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> TokenSet {
        TokenSet {
            access_token: "BQD-access-token".into(),
            refresh_token: "AQB-refresh-token".into(),
            expires_at: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            scope: Some("user-top-read".into()),
        }
    }

    #[test]
    fn seal_and_open_round_trip_with_fresh_nonces() {
        let key = TokenKey::random();
        let a = key.seal(&tokens());
        let b = key.seal(&tokens());
        assert_ne!(a.ciphertext[..NONCE_LEN], b.ciphertext[..NONCE_LEN], "a new nonce per seal");
        assert_eq!(key.open(&a), Some(tokens()));
        let text = String::from_utf8_lossy(&a.ciphertext);
        assert!(!text.contains("access-token") && !text.contains("refresh-token"));
    }

    #[test]
    fn another_key_or_a_flipped_bit_does_not_open() {
        let key = TokenKey::random();
        let mut sealed = key.seal(&tokens());
        assert_eq!(TokenKey::random().open(&sealed), None);
        let last = sealed.ciphertext.len() - 1;
        sealed.ciphertext[last] ^= 1;
        assert_eq!(key.open(&sealed), None);
    }

    #[test]
    fn keys_parse_from_hex_or_base64_of_32_bytes_only() {
        assert!(TokenKey::parse(&"ab".repeat(32)).is_ok());
        assert!(TokenKey::parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").is_ok());
        assert!(TokenKey::parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").is_ok());
        assert!(TokenKey::parse("c2hvcnQ=").unwrap_err().contains("5 bytes"));
        assert!(TokenKey::parse("not a key!").is_err());
        assert!(TokenKey::parse("").is_err());
    }
}
