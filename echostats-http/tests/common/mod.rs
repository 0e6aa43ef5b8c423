//! Helpers of the server tests: a server on 127.0.0.1:0 in this process over a fresh
//! SQLite file, and a reqwest client that talks to it. Each test binary uses a part.
#![allow(dead_code)]

use echostats::store::Store;
use echostats_http::{Server, ServerConfig};
use reqwest::header::{HeaderMap, CONTENT_TYPE, COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub const SECRET: &[u8] = b"test secret test secret test secret!";

pub struct TestServer {
    pub base: String,
    pub store: Arc<dyn Store>,
    pub http: reqwest::Client,
    pub server: Option<Server>,
    pub _dir: tempfile::TempDir,
}

pub async fn sqlite_store(dir: &Path) -> Arc<dyn Store> {
    echostats::open_store(&format!("sqlite://{}", dir.join("echostats.db").display())).await.expect("open SQLite")
}

/// A server with dev-login on and no rate limit, changed by `configure`.
pub async fn start(configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    start_on(store, dir, configure).await
}

pub async fn start_on(
    store: Arc<dyn Store>,
    dir: tempfile::TempDir,
    configure: impl FnOnce(&mut ServerConfig),
) -> TestServer {
    let mut config = ServerConfig::new(SECRET.to_vec());
    config.bind = "127.0.0.1:0".into();
    config.dev_login = true;
    config.rate_limit = None;
    configure(&mut config);
    let server = Server::bind(config, store.clone()).await.expect("server starts");
    TestServer {
        base: format!("http://{}", server.local_addr()),
        store,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        server: Some(server),
        _dir: dir,
    }
}

/// A response: status, headers and the body as JSON (`Null` when it is not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    async fn from(resp: reqwest::Response) -> Answer {
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        Answer { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }
}

impl TestServer {
    pub async fn call(&self, method: Method, path: &str, session: Option<&str>, headers: &[(&str, &str)]) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = session {
            req = req.header(COOKIE, format!("session={token}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Answer::from(req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"))).await
    }

    pub async fn get(&self, path: &str, session: Option<&str>) -> Answer {
        self.call(Method::GET, path, session, &[]).await
    }

    pub async fn post(&self, path: &str, session: Option<&str>) -> Answer {
        self.call(Method::POST, path, session, &[]).await
    }

    /// GETs `path` and returns the status, headers and the body as bytes.
    pub async fn download(&self, path: &str, session: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, format!("session={session}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let (status, headers) = (resp.status(), resp.headers().clone());
        (status, headers, resp.bytes().await.unwrap().to_vec())
    }

    /// Posts `content` as the multipart field `field` (file name `file_name`).
    pub async fn upload(
        &self,
        path: &str,
        session: Option<&str>,
        field: &str,
        file_name: &str,
        content: &[u8],
    ) -> Answer {
        const BOUNDARY: &str = "echostats-test-boundary-7d1f";
        let mut body = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file_name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(content);
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
            .body(body);
        if let Some(token) = session {
            req = req.header(COOKIE, format!("session={token}"));
        }
        Answer::from(req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"))).await
    }

    /// Signs `user` in through dev-login and returns the session token.
    pub async fn login(&self, user: &str) -> String {
        let a = self.post(&format!("/api/v1/auth/dev-login?user={user}"), None).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        a.body["token"].as_str().expect("token").to_string()
    }

    /// Polls `GET /api/v1/sync-jobs` until job `id` has ended; returns it.
    pub async fn wait_for_job(&self, id: &str, session: &str) -> Value {
        for _ in 0..600 {
            let a = self.get("/api/v1/sync-jobs?limit=100", Some(session)).await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.body);
            let job = a.body["items"].as_array().unwrap().iter().find(|j| j["id"] == id).cloned();
            let job = job.unwrap_or_else(|| panic!("job {id} is listed: {}", a.body));
            if ["completed", "failed"].contains(&job["status"].as_str().unwrap()) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("job {id} did not end within 60 s");
    }

    pub async fn stop(mut self) {
        self.server.take().unwrap().shutdown().await.unwrap();
    }
}

/// The sample export (folders as Spotify delivers them).
pub fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sample_export")
}
