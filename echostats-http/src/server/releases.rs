//! The latest-release check behind `GET /api/health/update`.
//!
//! It reads a GitHub "latest release" document (`GET /repos/{owner}/{repo}/releases/latest`)
//! from the configured URL, at most once an hour, in the background: a request is answered
//! at once with what is known, and starts a check when what is known is older than an hour.
//! So the route never waits for the network, and a machine without one only ever sees
//! `latest_version: null`. Without a URL there is no check at all.

use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a successful check is trusted.
pub const CHECK_EVERY: Duration = Duration::from_secs(3600);
/// How long to wait after a failed check before the next one.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(300);
/// Time limit of one check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// A published release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The version, without a leading `v`.
    pub version: String,
    /// Its page.
    pub url: Option<String>,
    /// Its notes.
    pub notes: Option<String>,
    /// When it was published (RFC 3339).
    pub published_at: Option<String>,
}

/// The fields of GitHub's release document that we read.
#[derive(Deserialize)]
struct GithubRelease {
    tag_name: String,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    published_at: Option<String>,
}

#[derive(Default)]
struct Known {
    latest: Option<Release>,
    /// When the next check may start; `None`: now.
    next_check: Option<Instant>,
    checking: bool,
}

/// The check, shared by all requests.
pub struct ReleaseCheck {
    url: Option<String>,
    http: reqwest::Client,
    known: Arc<Mutex<Known>>,
}

impl ReleaseCheck {
    /// Checks `url` (a GitHub releases/latest API URL); `None` turns the check off.
    pub fn new(url: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(CHECK_TIMEOUT)
            .user_agent(concat!("echostats/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        ReleaseCheck { url, http, known: Arc::new(Mutex::new(Known::default())) }
    }

    /// The latest release known now (never waits); starts a background check when the
    /// last one is due.
    pub fn latest(&self) -> Option<Release> {
        let url = self.url.as_ref()?;
        let mut known = self.known.lock().expect("release check");
        let due = known.next_check.is_none_or(|t| Instant::now() >= t);
        if due && !known.checking {
            known.checking = true;
            let (http, url, shared) = (self.http.clone(), url.clone(), self.known.clone());
            tokio::spawn(async move {
                let result = fetch(&http, &url).await;
                let mut known = shared.lock().expect("release check");
                known.checking = false;
                match result {
                    Ok(release) => {
                        known.latest = Some(release);
                        known.next_check = Some(Instant::now() + CHECK_EVERY);
                    }
                    Err(e) => {
                        tracing::info!(error = %e, %url, "release check failed; trying again later");
                        known.next_check = Some(Instant::now() + RETRY_AFTER_FAILURE);
                    }
                }
            });
        }
        known.latest.clone()
    }
}

async fn fetch(http: &reqwest::Client, url: &str) -> Result<Release, String> {
    let resp = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/vnd.github+json")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let r: GithubRelease = resp.json().await.map_err(|e| e.to_string())?;
    Ok(Release {
        version: r.tag_name.trim().trim_start_matches(['v', 'V']).to_string(),
        url: r.html_url,
        notes: r.body,
        published_at: r.published_at,
    })
}

/// Whether `latest` is a newer version than `current` (semantic versions; a tag that is
/// not one counts as newer when it differs).
pub fn is_newer(latest: &str, current: &str) -> bool {
    match (semver::Version::parse(latest), semver::Version::parse(current)) {
        (Ok(l), Ok(c)) => l > c,
        _ => latest != current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_semantically() {
        assert!(is_newer("0.2.0", "0.1.0"));
        assert!(is_newer("0.10.0", "0.9.3"));
        assert!(!is_newer("0.1.0", "0.1.0"));
        assert!(!is_newer("0.1.0", "0.2.0"));
        assert!(!is_newer("0.2.0-rc.1", "0.2.0"));
        assert!(is_newer("nightly-2026", "0.1.0"));
    }

    #[tokio::test]
    async fn without_a_url_nothing_is_checked() {
        let check = ReleaseCheck::new(None);
        assert_eq!(check.latest(), None);
    }
}
