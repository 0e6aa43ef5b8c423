//! Spotify sign-in and the Spotify-backed routes over real HTTP on loopback: a fake Spotify
//! (accounts service and Web API, a poem app on 127.0.0.1:0 speaking the real wire format)
//! and the server under test, each in this process.

use base64::Engine;
use echostats::spotify::{SpotifyClient, SpotifyConfig};
use echostats::store::{ApiLogQuery, Store};
use echostats::Error;
use echostats_http::{Server, ServerConfig, TokenKey};
use poem::http::StatusCode as PoemStatus;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Form, Query};
use poem::{get, handler, post, EndpointExt, Request, Response, Route};
use reqwest::header::{ACCEPT, COOKIE, LOCATION, RETRY_AFTER, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const SECRET: &[u8] = b"test secret test secret test secret!";
const CLIENT_ID: &str = "test-client";
const CLIENT_SECRET: &str = "test-client-secret";
const REDIRECT_URI: &str = "http://127.0.0.1:8000/api/v1/auth/callback";
const USER: &str = "spotify-alice";
const GOOD_CODE: &str = "good-code";

// ---------------------------------------------------------------------------------------
// The fake Spotify

#[derive(Default)]
struct FakeState {
    /// The access token the Web API accepts now.
    access_token: String,
    /// Access tokens issued so far.
    issued: u32,
    /// `expires_in` of the token answers.
    expires_in: i64,
    /// Forms posted to `/api/token`.
    token_forms: Vec<HashMap<String, String>>,
    /// Calls per path of the Web API.
    hits: HashMap<String, u32>,
    /// Query and JSON body of each `PUT /v1/me/player/play`.
    plays: Vec<(String, Value)>,
    /// `expires_in` of refreshed tokens (default: `expires_in`).
    refresh_expires_in: Option<i64>,
    /// The account's recently played items (`{track, played_at, context}`), newest first.
    recent: Vec<Value>,
    /// The `after` parameter of each recently-played call.
    recent_after: Vec<Option<String>>,
    /// Genres of the artists `GET /v1/artists/{id}` knows.
    artist_genres: HashMap<String, Vec<String>>,
    /// Artist lookups answer 429 (a quota error with a long `Retry-After`).
    artists_rate_limited: bool,
    /// `GET /v1/me/player` and `/v1/me/player/queue` answer these; 204 (no active device)
    /// when `None`.
    playback: Option<Value>,
    queue: Option<Value>,
    /// Player commands other than play (pause, next, previous): method, path and
    /// `Content-Length` of each.
    commands: Vec<(String, String, Option<String>)>,
    /// The error player commands answer with (status, Spotify's error body).
    command_error: Option<(u16, Value)>,
    /// Query of each library and browse call, by path.
    queries: Vec<(String, HashMap<String, String>)>,
    /// Browse answers 404, as for development-mode apps since Feb 2026.
    browse_removed: bool,
}

#[derive(Default)]
struct Fake(Mutex<FakeState>);

fn json_response(status: u16, body: Value) -> Response {
    Response::builder()
        .status(PoemStatus::from_u16(status).unwrap())
        .content_type("application/json")
        .body(body.to_string())
}

fn api_error(status: u16, message: &str) -> Response {
    json_response(status, json!({"error": {"status": status, "message": message}}))
}

impl Fake {
    /// Counts the call and checks the bearer token: `Some(the 401 Spotify gives)` when wrong.
    fn reject(&self, req: &Request) -> Option<Response> {
        let mut s = self.0.lock().unwrap();
        *s.hits.entry(req.uri().path().to_string()).or_default() += 1;
        let expected = format!("Bearer {}", s.access_token);
        match req.headers().get("authorization").and_then(|v| v.to_str().ok()) {
            Some(v) if !s.access_token.is_empty() && v == expected => None,
            _ => Some(api_error(401, "Invalid access token")),
        }
    }

    fn issue(&self, with_refresh: bool) -> Value {
        let mut s = self.0.lock().unwrap();
        s.issued += 1;
        s.access_token = format!("access-{}", s.issued);
        let expires_in = if with_refresh { s.expires_in } else { s.refresh_expires_in.unwrap_or(s.expires_in) };
        let mut body = json!({
            "access_token": s.access_token,
            "token_type": "Bearer",
            "scope": "user-read-recently-played playlist-read-private",
            "expires_in": expires_in,
        });
        if with_refresh {
            body["refresh_token"] = json!("refresh-1");
        }
        body
    }
}

#[handler]
fn token(fake: Data<&Arc<Fake>>, req: &Request, form: Form<HashMap<String, String>>) -> Response {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    if req.headers().get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Basic {basic}")) {
        return json_response(400, json!({"error": "invalid_client", "error_description": "Invalid client"}));
    }
    let form = form.0;
    fake.0 .0.lock().unwrap().token_forms.push(form.clone());
    let invalid_grant = |d: &str| json_response(400, json!({"error": "invalid_grant", "error_description": d}));
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            if form.get("code").map(String::as_str) != Some(GOOD_CODE) {
                return invalid_grant("Invalid authorization code");
            }
            if form.get("redirect_uri").map(String::as_str) != Some(REDIRECT_URI) {
                return invalid_grant("Invalid redirect URI");
            }
            json_response(200, fake.issue(true))
        }
        // Like Spotify often does: a new access token and no new refresh token.
        Some("refresh_token") if form.get("refresh_token").map(String::as_str) == Some("refresh-1") => {
            json_response(200, fake.issue(false))
        }
        Some("refresh_token") => invalid_grant("Invalid refresh token"),
        _ => json_response(400, json!({"error": "unsupported_grant_type"})),
    }
}

#[handler]
fn me(fake: Data<&Arc<Fake>>, req: &Request) -> Response {
    if let Some(r) = fake.reject(req) {
        return r;
    }
    json_response(
        200,
        json!({"id": USER, "display_name": "Alice", "type": "user", "uri": "spotify:user:spotify-alice",
               "images": [{"url": "https://i.scdn.co/image/alice", "height": 64, "width": 64}]}),
    )
}

#[handler]
fn playlists(fake: Data<&Arc<Fake>>, req: &Request, q: Query<HashMap<String, String>>) -> Response {
    if let Some(r) = fake.reject(req) {
        return r;
    }
    let limit: usize = q.get("limit").and_then(|v| v.parse().ok()).unwrap_or(20);
    let offset: usize = q.get("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
    let all: Vec<Value> = (1..=3)
        .map(|i| {
            json!({
                "id": format!("pl{i}"), "name": format!("Playlist {i}"), "description": "",
                "images": [{"url": format!("https://i.scdn.co/image/pl{i}")}],
                "items": {"href": "https://api.spotify.com/v1/playlists/x/items", "total": 10 * i},
                "owner": {"id": USER, "display_name": "Alice"},
                "public": i != 2, "collaborative": false,
                "external_urls": {"spotify": format!("https://open.spotify.com/playlist/pl{i}")},
                "type": "playlist", "uri": format!("spotify:playlist:pl{i}")
            })
        })
        .collect();
    let items: Vec<Value> = all.iter().skip(offset).take(limit).cloned().collect();
    json_response(200, json!({"items": items, "total": all.len(), "limit": limit, "offset": offset}))
}

/// A track object as Spotify sends it, with its album and artists (since Feb 2026 without
/// `popularity` for development-mode apps).
fn track_json(track_id: &str, name: &str, artist: (&str, &str), album: &str, duration_ms: i64) -> Value {
    json!({"id": track_id, "name": name, "type": "track", "duration_ms": duration_ms, "explicit": false,
           "uri": format!("spotify:track:{track_id}"),
           "artists": [{"id": artist.0, "name": artist.1, "type": "artist", "uri": format!("spotify:artist:{}", artist.0)}],
           "album": {"id": format!("album-{track_id}"), "name": album, "album_type": "album", "total_tracks": 10,
                     "release_date": "2000-10-02", "release_date_precision": "day", "type": "album",
                     "artists": [{"id": artist.0, "name": artist.1, "type": "artist"}],
                     "images": [{"url": "https://i.scdn.co/image/cover", "height": 640, "width": 640},
                                {"url": "https://i.scdn.co/image/cover-small", "height": 64, "width": 64}]}})
}

/// A recently-played item as Spotify sends it: the track with its album and artists.
fn recent_item(track_id: &str, name: &str, artist: (&str, &str), played_at: chrono::DateTime<chrono::Utc>) -> Value {
    json!({
        "track": track_json(track_id, name, artist, &format!("{name} (album)"), 250000),
        "played_at": played_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "context": {"type": "album", "uri": format!("spotify:album:album-{track_id}")}
    })
}

const RADIOHEAD: (&str, &str) = ("4Z8W4fKeB5YxbusRsdQVPb", "Radiohead");
const PORTISHEAD: (&str, &str) = ("6liAMWkVf5LH7YR9yfFy1Y", "Portishead");

#[handler]
fn recently_played(fake: Data<&Arc<Fake>>, req: &Request, q: Query<HashMap<String, String>>) -> Response {
    if let Some(r) = fake.reject(req) {
        return r;
    }
    let mut s = fake.0 .0.lock().unwrap();
    s.recent_after.push(q.get("after").cloned());
    let after: Option<i64> = q.get("after").and_then(|a| a.parse().ok());
    let limit: usize = q.get("limit").and_then(|v| v.parse().ok()).unwrap_or(20);
    let items: Vec<Value> = s
        .recent
        .iter()
        .filter(|i| {
            let at = chrono::DateTime::parse_from_rfc3339(i["played_at"].as_str().unwrap()).unwrap();
            after.is_none_or(|a| at.timestamp_millis() > a)
        })
        .take(limit)
        .cloned()
        .collect();
    json_response(200, json!({"items": items, "limit": limit, "cursors": {"after": "1", "before": "1"}}))
}

#[handler]
fn artist_lookup(fake: Data<&Arc<Fake>>, req: &Request, id: poem::web::Path<String>) -> Response {
    if let Some(r) = fake.reject(req) {
        return r;
    }
    let s = fake.0 .0.lock().unwrap();
    if s.artists_rate_limited {
        let mut r = json_response(
            429,
            json!({"error": {"status": 429, "message": "Too many requests", "reason": "QUOTA_EXCEEDED"}}),
        );
        r.headers_mut().insert("retry-after", "3600".parse().unwrap());
        return r;
    }
    match s.artist_genres.get(&id.0) {
        // Since Feb 2026 no `followers` and no `popularity` for development-mode apps.
        Some(genres) => json_response(
            200,
            json!({"id": id.0, "name": if id.0 == RADIOHEAD.0 { RADIOHEAD.1 } else { PORTISHEAD.1 },
                   "genres": genres, "type": "artist", "images": []}),
        ),
        None => api_error(404, "Resource not found"),
    }
}

#[handler]
fn devices(fake: Data<&Arc<Fake>>, req: &Request) -> Response {
    if let Some(r) = fake.reject(req) {
        return r;
    }
    // Spotify's quota answer: hours to wait.
    let mut r = json_response(
        429,
        json!({"error": {"status": 429, "message": "Too many requests", "reason": "QUOTA_EXCEEDED"}}),
    );
    r.headers_mut().insert("retry-after", "7200".parse().unwrap());
    r
}

/// `Some` answer as JSON, `None` as Spotify's 204 without a body.
fn json_or_no_content(answer: Option<Value>) -> Response {
    match answer {
        Some(v) => json_response(200, v),
        None => Response::builder().status(PoemStatus::NO_CONTENT).finish(),
    }
}

#[handler]
fn player(fake: Data<&Arc<Fake>>, req: &Request) -> Response {
    if let Some(r) = fake.reject(req) {
        return r;
    }
    json_or_no_content(fake.0 .0.lock().unwrap().playback.clone())
}

#[handler]
fn queue(fake: Data<&Arc<Fake>>, req: &Request) -> Response {
    if let Some(r) = fake.reject(req) {
        return r;
    }
    json_or_no_content(fake.0 .0.lock().unwrap().queue.clone())
}

/// `PUT /v1/me/player/pause`, `POST /v1/me/player/next` and `/previous`.
#[handler]
fn command(fake: Data<&Arc<Fake>>, req: &Request) -> Response {
    if let Some(r) = fake.reject(req) {
        return r;
    }
    let mut s = fake.0 .0.lock().unwrap();
    let length = req.headers().get("content-length").and_then(|v| v.to_str().ok()).map(String::from);
    s.commands.push((req.method().to_string(), req.uri().path().to_string(), length));
    command_answer(&s)
}

/// What a player command answers: the configured refusal, or 204.
fn command_answer(s: &FakeState) -> Response {
    match s.command_error.clone() {
        Some((status, body)) => json_response(status, body),
        None => Response::builder().status(PoemStatus::NO_CONTENT).finish(),
    }
}

/// The library and browse pages (`GET /v1/me/following`, `/v1/me/albums`,
/// `/v1/browse/new-releases`, `/v1/browse/categories`): the query is recorded; browse
/// answers 404 when removed.
#[handler]
fn library(fake: Data<&Arc<Fake>>, req: &Request, q: Query<HashMap<String, String>>) -> Response {
    if let Some(r) = fake.reject(req) {
        return r;
    }
    let path = req.uri().path().to_string();
    let mut s = fake.0 .0.lock().unwrap();
    s.queries.push((path.clone(), q.0));
    if s.browse_removed && path.starts_with("/v1/browse/") {
        return api_error(404, "Not found.");
    }
    let page = match path.as_str() {
        // Cursor-paged, under `artists`. The second artist has no `followers`, as for
        // development-mode apps since Feb 2026.
        "/v1/me/following" => json!({"artists": {
            "href": "https://api.spotify.com/v1/me/following?type=artist&limit=2",
            "items": [
                {"id": RADIOHEAD.0, "name": RADIOHEAD.1, "type": "artist", "genres": ["art rock", "alternative rock"],
                 "followers": {"href": null, "total": 8500000},
                 "images": [{"url": "https://i.scdn.co/image/radiohead", "height": 640, "width": 640}],
                 "uri": format!("spotify:artist:{}", RADIOHEAD.0)},
                {"id": PORTISHEAD.0, "name": PORTISHEAD.1, "type": "artist", "genres": [], "images": [],
                 "uri": format!("spotify:artist:{}", PORTISHEAD.0)}
            ],
            "limit": 2, "next": "https://api.spotify.com/v1/me/following?type=artist&after=x", "total": 142,
            "cursors": {"after": PORTISHEAD.0}
        }}),
        "/v1/me/albums" => json!({
            "href": "https://api.spotify.com/v1/me/albums", "limit": 1, "offset": 1, "total": 3,
            "next": "https://api.spotify.com/v1/me/albums?offset=2&limit=1", "previous": null,
            "items": [{"added_at": "2024-05-01T12:00:00Z", "album": track_json("1", "x", RADIOHEAD, "Kid A", 1)["album"]}]
        }),
        "/v1/browse/new-releases" => json!({"albums": {
            "href": "https://api.spotify.com/v1/browse/new-releases", "limit": 20, "offset": 0, "total": 100,
            "next": null, "previous": null,
            "items": [{"id": "6GjwtEZcfenmof6l18N7T7", "name": "Kid A Mnesia", "album_type": "compilation",
                       "total_tracks": 34, "release_date": "2021-11-05", "release_date_precision": "day",
                       "artists": [{"id": RADIOHEAD.0, "name": RADIOHEAD.1, "type": "artist"},
                                   {"id": PORTISHEAD.0, "name": PORTISHEAD.1, "type": "artist"}],
                       "images": [{"url": "https://i.scdn.co/image/mnesia", "height": 640, "width": 640}],
                       "type": "album"}]
        }}),
        _ => json!({"categories": {
            "href": "https://api.spotify.com/v1/browse/categories", "limit": 50, "offset": 0, "total": 1,
            "next": null, "previous": null,
            "items": [{"href": "https://api.spotify.com/v1/browse/categories/toplists", "id": "toplists",
                       "name": "Top Lists",
                       "icons": [{"url": "https://t.scdn.co/media/toplists.jpg", "height": 275, "width": 275}]}]
        }}),
    };
    json_response(200, page)
}

#[handler]
async fn play(fake: Data<&Arc<Fake>>, req: &Request, body: Vec<u8>) -> Response {
    if let Some(r) = fake.reject(req) {
        return r;
    }
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = fake.0 .0.lock().unwrap();
    s.plays.push((req.uri().query().unwrap_or("").to_string(), body));
    command_answer(&s)
}

/// Starts the fake; returns its base URL and state.
async fn fake_spotify(expires_in: i64) -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    {
        let mut s = fake.0.lock().unwrap();
        s.expires_in = expires_in;
        s.recent = vec![recent_item(
            "2kRFrWaLWifQkBFasAWgMo",
            "Everything In Its Right Place",
            RADIOHEAD,
            chrono::Utc::now() - chrono::Duration::hours(2),
        )];
        s.artist_genres.insert(RADIOHEAD.0.into(), vec!["art rock".into(), "alternative rock".into()]);
        s.artist_genres.insert(PORTISHEAD.0.into(), vec!["trip hop".into()]);
    }
    let app = Route::new()
        .at("/api/token", post(token))
        .at("/v1/me", get(me))
        .at("/v1/me/playlists", get(playlists))
        .at("/v1/me/player/recently-played", get(recently_played))
        .at("/v1/me/player/devices", get(devices))
        .at("/v1/me/player", get(player))
        .at("/v1/me/player/play", poem::put(play))
        .at("/v1/me/player/queue", get(queue))
        .at("/v1/me/player/pause", poem::put(command))
        .at("/v1/me/player/next", post(command))
        .at("/v1/me/player/previous", post(command))
        .at("/v1/me/following", get(library))
        .at("/v1/me/albums", get(library))
        .at("/v1/browse/new-releases", get(library))
        .at("/v1/browse/categories", get(library))
        .at("/v1/artists/:id", get(artist_lookup))
        .data(fake.clone());
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    (format!("http://{addr}"), fake)
}

fn spotify_config(fake_url: &str) -> SpotifyConfig {
    let mut c = SpotifyConfig::new(CLIENT_ID, CLIENT_SECRET);
    c.redirect_uri = REDIRECT_URI.into();
    c.accounts_url = fake_url.into();
    c.api_url = fake_url.into();
    c
}

// ---------------------------------------------------------------------------------------
// The server under test

struct Setup {
    base: String,
    store: Arc<dyn Store>,
    key: TokenKey,
    fake: Arc<Fake>,
    fake_url: String,
    /// Does not follow redirects, so the tests see the 302s.
    http: reqwest::Client,
    _server: Server,
    _dir: tempfile::TempDir,
}

async fn setup(expires_in: i64) -> Setup {
    setup_with(expires_in, |_| {}).await
}

fn server_config(fake_url: &str, key: &TokenKey) -> ServerConfig {
    let mut config = ServerConfig::new(SECRET.to_vec());
    config.bind = "127.0.0.1:0".into();
    config.rate_limit = None;
    config.dev_login = true;
    config.spotify = Some(spotify_config(fake_url));
    config.encryption_key = Some(key.clone());
    config.frontend_url = "http://localhost:3000/".into();
    config
}

async fn setup_with(expires_in: i64, configure: impl FnOnce(&mut ServerConfig)) -> Setup {
    let (fake_url, fake) = fake_spotify(expires_in).await;
    let dir = tempfile::tempdir().unwrap();
    let store =
        echostats::open_store(&format!("sqlite://{}", dir.path().join("echostats.db").display())).await.unwrap();
    let key = TokenKey::random();
    let mut config = server_config(&fake_url, &key);
    configure(&mut config);
    let server = Server::bind(config, store.clone()).await.unwrap();
    Setup {
        base: format!("http://{}", server.local_addr()),
        store,
        key,
        fake,
        fake_url,
        http: reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        _server: server,
        _dir: dir,
    }
}

impl Setup {
    /// A second server over the same store, keys and fake Spotify (a restart, with a new
    /// Spotify client); sessions of the first one are good on it.
    async fn restart(&self) -> Setup {
        let server = Server::bind(server_config(&self.fake_url, &self.key), self.store.clone()).await.unwrap();
        Setup {
            base: format!("http://{}", server.local_addr()),
            store: self.store.clone(),
            key: self.key.clone(),
            fake: self.fake.clone(),
            fake_url: self.fake_url.clone(),
            http: self.http.clone(),
            _server: server,
            _dir: tempfile::tempdir().unwrap(),
        }
    }
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Setup {
    async fn call(&self, method: reqwest::Method, path: &str, session: Option<&str>, accept: Option<&str>) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(s) = session {
            req = req.header(COOKIE, format!("session={s}"));
        }
        if let Some(a) = accept {
            req = req.header(ACCEPT, a);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap_or(Value::Null);
        Answer { status, headers, body }
    }

    async fn get(&self, path: &str, session: Option<&str>) -> Answer {
        self.call(reqwest::Method::GET, path, session, None).await
    }

    /// `GET /auth/login` as an API client: `(state, authorize URL)`.
    async fn login(&self) -> (String, reqwest::Url) {
        let a = self.get("/api/v1/auth/login", None).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        let url = reqwest::Url::parse(a.body["url"].as_str().unwrap()).unwrap();
        (a.body["state"].as_str().unwrap().to_string(), url)
    }

    /// The whole sign-in, and the initial sync it starts; returns the session token.
    async fn sign_in(&self) -> String {
        let (state, _) = self.login().await;
        let a = self.get(&format!("/api/v1/auth/callback?code={GOOD_CODE}&state={state}"), None).await;
        assert_eq!(a.status, StatusCode::FOUND, "{}", a.body);
        let session = session_of(&a.headers);
        self.jobs_done(&session).await;
        session
    }

    /// Waits until the user has no pending or running job; returns their jobs, newest first.
    async fn jobs_done(&self, session: &str) -> Vec<Value> {
        for _ in 0..200 {
            let jobs = self.get("/api/v1/sync-jobs?limit=100", Some(session)).await;
            let items = jobs.body["items"].as_array().cloned().unwrap_or_default();
            if items.iter().all(|j| j["status"] == "completed" || j["status"] == "failed") {
                return items;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("jobs did not finish");
    }

    fn token_forms(&self) -> Vec<HashMap<String, String>> {
        self.fake.0.lock().unwrap().token_forms.clone()
    }
}

fn session_of(headers: &reqwest::header::HeaderMap) -> String {
    let cookie = headers.get(SET_COOKIE).expect("Set-Cookie").to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    cookie.strip_prefix("session=").unwrap().split(';').next().unwrap().to_string()
}

fn query_of(url: &reqwest::Url) -> HashMap<String, String> {
    url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

// ---------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn login_callback_session_and_a_spotify_backed_route() {
    let s = setup(3600).await;

    // API clients get {url, state}; the URL is Spotify's authorize page with PKCE S256.
    let (state, url) = s.login().await;
    assert_eq!(format!("{}{}", url.origin().ascii_serialization(), url.path()), format!("{}/authorize", s.fake_url));
    let q = query_of(&url);
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["redirect_uri"], REDIRECT_URI);
    assert_eq!(q["state"], state);
    assert_eq!(q["code_challenge_method"], "S256");
    for scope in ["user-read-recently-played", "user-top-read", "playlist-read-private", "user-library-read"] {
        assert!(q["scope"].split(' ').any(|s| s == scope), "{scope} in {}", q["scope"]);
    }

    // Browsers are redirected.
    let html = s.call(reqwest::Method::GET, "/api/v1/auth/login", None, Some("text/html,application/xhtml+xml")).await;
    assert_eq!(html.status, StatusCode::FOUND);
    assert!(html.headers[LOCATION].to_str().unwrap().starts_with(&format!("{}/authorize?", s.fake_url)));

    // The callback exchanges the code with the verifier, signs in and redirects.
    let a = s.get(&format!("/api/v1/auth/callback?code={GOOD_CODE}&state={state}"), None).await;
    assert_eq!(a.status, StatusCode::FOUND, "{}", a.body);
    assert_eq!(a.headers[LOCATION], "http://localhost:3000/auth/callback?status=success");
    let session = session_of(&a.headers);
    s.jobs_done(&session).await;

    let forms = s.token_forms();
    assert_eq!(forms.len(), 1);
    assert_eq!(forms[0]["grant_type"], "authorization_code");
    let verifier = &forms[0]["code_verifier"];
    assert!((43..=128).contains(&verifier.len()));
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    assert_eq!(challenge, q["code_challenge"], "the verifier sent matches the challenge of the authorize URL");

    // The user exists under the Spotify id; the tokens are stored sealed.
    let user = s.store.user(USER).await.unwrap();
    assert_eq!((user.spotify_id.as_deref(), user.display_name.as_deref()), (Some(USER), Some("Alice")));
    let sealed = s.store.tokens(USER).await.unwrap().expect("tokens stored");
    let text = String::from_utf8_lossy(&sealed.ciphertext);
    assert!(!text.contains("access-1") && !text.contains("refresh-1"), "tokens are not stored in the clear");
    let opened = s.key.open(&sealed).expect("sealed under ENCRYPTION_KEY");
    assert_eq!((opened.access_token.as_str(), opened.refresh_token.as_str()), ("access-1", "refresh-1"));

    // The session works, and a Spotify-backed route answers in the EchoStats shape.
    let status = s.get("/api/v1/auth/status", Some(&session)).await;
    assert_eq!(status.body["authenticated"], true);
    assert_eq!(status.body["user"]["spotify_id"], USER);
    assert!(status.body["token_expires_at"].is_string());

    let p = s.get("/api/v1/playlists?limit=2", Some(&session)).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(
        (p.body["total"].as_i64(), p.body["page"].as_i64(), p.body["limit"].as_i64()),
        (Some(3), Some(1), Some(2))
    );
    assert_eq!(
        p.body["items"][0],
        json!({"id": "pl1", "user_id": USER, "spotify_id": "pl1", "name": "Playlist 1", "description": null,
               "image_url": "https://i.scdn.co/image/pl1", "tracks_total": 10, "owner": "Alice", "public": true,
               "collaborative": false, "external_url": "https://open.spotify.com/playlist/pl1"})
    );
    let page2 = s.get("/api/v1/playlists?limit=2&page=2", Some(&session)).await;
    assert_eq!(page2.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(page2.body["items"][0]["spotify_id"], "pl3");

    // Nothing plays: 204 from Spotify.
    let current = s.get("/api/v1/player/current", Some(&session)).await;
    assert_eq!(current.body, json!({"is_playing": false}));

    // Every call is logged for the user, without tokens or the code.
    let logs = s.store.api_logs(USER, &ApiLogQuery { limit: 200, ..Default::default() }).await.unwrap();
    let calls: Vec<String> =
        logs.items.iter().map(|l| format!("{} {} {}", l.method, l.endpoint, l.status_code)).collect();
    let expected = [
        "POST /api/token 200",
        "GET /v1/me 200",
        // The initial sync.
        "GET /v1/me/player/recently-played 200",
        &format!("GET /v1/artists/{} 200", RADIOHEAD.0),
        "GET /v1/me/playlists 200",
        "GET /v1/me/playlists 200",
        "GET /v1/me/player 204",
    ];
    let mut sorted_calls = calls.clone();
    sorted_calls.sort();
    let mut sorted_expected: Vec<String> = expected.iter().map(|e| e.to_string()).collect();
    sorted_expected.sort();
    assert_eq!(sorted_calls, sorted_expected);
    for l in &logs.items {
        let all = format!("{l:?}");
        assert!(!all.contains("access-1") && !all.contains("refresh-1") && !all.contains(GOOD_CODE), "{all}");
        assert!(l.service.starts_with("spotify"));
    }
}

#[tokio::test]
async fn the_callback_refuses_unknown_reused_and_rejected_states_and_codes() {
    let s = setup(3600).await;
    let a = s.get(&format!("/api/v1/auth/callback?code={GOOD_CODE}&state=forged"), None).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body["detail"].as_str().unwrap().contains("state"), "{}", a.body);
    assert!(a.headers.get(SET_COOKIE).is_none());
    assert!(s.token_forms().is_empty(), "no code exchange for a forged state");

    let missing = s.get(&format!("/api/v1/auth/callback?code={GOOD_CODE}"), None).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);

    // The user denied access at Spotify.
    let (state, _) = s.login().await;
    let denied = s.get(&format!("/api/v1/auth/callback?error=access_denied&state={state}"), None).await;
    assert_eq!(denied.status, StatusCode::BAD_REQUEST);
    assert!(denied.body["detail"].as_str().unwrap().contains("access_denied"));

    // Spotify refuses the code (invalid_grant): 400, nothing stored.
    let (state, _) = s.login().await;
    let bad = s.get(&format!("/api/v1/auth/callback?code=stolen&state={state}"), None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert!(matches!(s.store.user(USER).await, Err(Error::NotFound { .. })));

    // A state is good once.
    let (state, _) = s.login().await;
    let ok = s.get(&format!("/api/v1/auth/callback?code={GOOD_CODE}&state={state}"), None).await;
    assert_eq!(ok.status, StatusCode::FOUND);
    let again = s.get(&format!("/api/v1/auth/callback?code={GOOD_CODE}&state={state}"), None).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn expired_tokens_refresh_automatically_and_keep_the_refresh_token() {
    // Tokens that expire within the refresh margin: every use refreshes first.
    let s = setup(30).await;
    let session = s.sign_in().await;

    let p = s.get("/api/v1/playlists", Some(&session)).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let forms = s.token_forms();
    assert_eq!(forms.len(), 3, "code exchange, a refresh before the initial sync, one before the call");
    assert_eq!((forms[2]["grant_type"].as_str(), forms[2]["refresh_token"].as_str()), ("refresh_token", "refresh-1"));
    let opened = s.key.open(&s.store.tokens(USER).await.unwrap().unwrap()).unwrap();
    assert_eq!(opened.access_token, "access-3", "the new access token is stored");
    assert_eq!(opened.refresh_token, "refresh-1", "no new refresh token came back: the old one is kept");

    let r = s.call(reqwest::Method::POST, "/api/v1/auth/refresh", Some(&session), None).await;
    assert_eq!((r.status, r.body.clone()), (StatusCode::OK, json!({"status": "refreshed"})));
    let opened = s.key.open(&s.store.tokens(USER).await.unwrap().unwrap()).unwrap();
    assert_eq!((opened.access_token.as_str(), opened.refresh_token.as_str()), ("access-4", "refresh-1"));

    // Not signed in: 401.
    let anon = s.call(reqwest::Method::POST, "/api/v1/auth/refresh", None, None).await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
    // Signed in without Spotify (dev-login): 401 as well.
    let dev = s.get("/api/v1/auth/dev-login?user=bob", None).await;
    let bob = dev.body["token"].as_str().unwrap().to_string();
    let r = s.call(reqwest::Method::POST, "/api/v1/auth/refresh", Some(&bob), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);

    // Logout clears the cookie and keeps the tokens (background sync goes on), as EchoStats.
    let out = s.call(reqwest::Method::POST, "/api/v1/auth/logout", Some(&session), None).await;
    assert_eq!(out.body, json!({"status": "logged_out"}));
    assert!(s.store.tokens(USER).await.unwrap().is_some());
}

#[tokio::test]
async fn a_spotify_429_is_a_429_with_its_retry_after_and_calls_wait() {
    let s = setup(3600).await;
    let session = s.sign_in().await;
    let a = s.get("/api/v1/player/devices", Some(&session)).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
    assert_eq!(a.headers[RETRY_AFTER], "7200");
    assert!(a.body["detail"].as_str().unwrap().contains("rate limited"), "{}", a.body);

    // The client waits out the Retry-After instead of calling again.
    let b = s.get("/api/v1/player/devices", Some(&session)).await;
    assert_eq!(b.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = b.headers[RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((7100..=7200).contains(&retry), "{retry}");
    assert_eq!(s.fake.0.lock().unwrap().hits["/v1/me/player/devices"], 1);

    let logs = s
        .store
        .api_logs(USER, &ApiLogQuery { limit: 50, status_min: Some(429), status_max: Some(429), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(logs.total, 2, "the call and the one not sent");
    assert!(logs.items.iter().all(|l| l.endpoint == "/v1/me/player/devices"));
}

#[tokio::test]
async fn the_core_client_reads_recently_played_and_maps_401() {
    let (fake_url, fake) = fake_spotify(3600).await;
    let store: Arc<dyn Store> = Arc::new(echostats::store::MemoryStore::new());
    let client = SpotifyClient::new(spotify_config(&fake_url), store.clone()).unwrap();
    let connected = client.connect(GOOD_CODE, "a-verifier-of-forty-three-characters-xxxxxxx").await.unwrap();
    assert_eq!(connected.profile.id, USER);
    let recent = client.recently_played(USER, &connected.tokens.access_token, 50, None).await.unwrap();
    assert_eq!(recent.items.len(), 1);
    assert_eq!(recent.items[0].track.name, "Everything In Its Right Place");
    assert_eq!(recent.items[0].context.as_ref().unwrap().kind.as_deref(), Some("album"));

    let e = client.recently_played(USER, "wrong-token", 50, None).await.unwrap_err();
    assert!(matches!(e, Error::Unauthenticated), "{e:?}");
    let e = client.connect("stolen", "verifier").await.unwrap_err();
    assert!(matches!(e, Error::Unauthenticated), "{e:?}");
    assert_eq!(fake.0.lock().unwrap().hits["/v1/me/player/recently-played"], 2);

    let logs = store.api_logs(USER, &ApiLogQuery { limit: 50, ..Default::default() }).await.unwrap();
    let calls: Vec<(String, i32)> = logs.items.iter().map(|l| (l.endpoint.clone(), l.status_code)).collect();
    assert_eq!(calls.iter().filter(|c| c.0 == "/v1/me/player/recently-played").count(), 2, "{calls:?}");
    assert!(calls.contains(&("/v1/me/player/recently-played".into(), 401)));
    assert!(calls.contains(&("/api/token".into(), 200)) && calls.contains(&("/v1/me".into(), 200)));
}

#[tokio::test]
async fn withdrawn_routes_answer_the_documented_empty_shapes() {
    let s = setup(3600).await;
    let session = s.sign_in().await;
    let r = s.get("/api/v1/recommendations?seed_type=artists&limit=10", Some(&session)).await;
    assert_eq!((r.status, r.body), (StatusCode::OK, json!({"items": [], "total": 0, "seed_info": {}})));
    let f = s.get("/api/v1/browse/featured-playlists", Some(&session)).await;
    assert_eq!(f.body["items"], json!([]));
    assert!(f.body["message"].as_str().unwrap().contains("withdrawn by Spotify in Nov 2024"));
    let bad = s.get("/api/v1/recommendations?seed_type=moods", Some(&session)).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let anon = s.get("/api/v1/recommendations", None).await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn player_state_and_queue_are_mapped_from_spotify_answers() {
    let s = setup(3600).await;
    let session = s.sign_in().await;
    let playing = track_json("2kRFrWaLWifQkBFasAWgMo", "Everything In Its Right Place", RADIOHEAD, "Kid A", 250000);
    s.fake.0.lock().unwrap().playback = Some(json!({
        "device": {"id": "abc123", "is_active": true, "is_private_session": false, "is_restricted": false,
                   "name": "MacBook Pro", "type": "Computer", "volume_percent": 65, "supports_volume": true},
        "shuffle_state": false, "smart_shuffle": false, "repeat_state": "off", "timestamp": 1700000000000_i64,
        "context": null, "progress_ms": 120000, "item": playing, "currently_playing_type": "track",
        "actions": {"disallows": {"resuming": true}}, "is_playing": true
    }));
    let current = s.get("/api/v1/player/current", Some(&session)).await;
    assert_eq!(current.status, StatusCode::OK, "{}", current.body);
    assert_eq!(
        current.body,
        json!({"is_playing": true, "track_name": "Everything In Its Right Place", "artist_name": "Radiohead",
               "album_name": "Kid A", "album_image": "https://i.scdn.co/image/cover",
               "track_id": "2kRFrWaLWifQkBFasAWgMo", "duration_ms": 250000, "progress_ms": 120000,
               "device": "MacBook Pro", "shuffle": false, "repeat": "off"})
    );
    // An active device with nothing Spotify will show (an ad, a private session).
    s.fake.0.lock().unwrap().playback = Some(json!({"is_playing": true, "item": null, "currently_playing_type": "ad"}));
    assert_eq!(s.get("/api/v1/player/current", Some(&session)).await.body, json!({"is_playing": false}));

    // The queue: tracks and episodes (an episode's show stands for artist and album), at
    // most 20 of Spotify's items.
    let episode = json!({"id": "ep1", "name": "Ep. 1: Machines", "type": "episode", "duration_ms": 3600000,
                         "images": [{"url": "https://i.scdn.co/image/ep1", "height": 640, "width": 640}],
                         "show": {"id": "show1", "name": "Daily Radio", "publisher": "Radio", "type": "show"}});
    let mut next = vec![track_json("6LgJvl0Xdtc73RJ1mZoUnj", "Kid A", RADIOHEAD, "Kid A", 280000), episode];
    next.extend((0..23).map(|i| track_json(&format!("t{i}"), &format!("Track {i}"), PORTISHEAD, "Dummy", 200000)));
    s.fake.0.lock().unwrap().queue = Some(json!({"currently_playing": playing, "queue": next}));
    let q = s.get("/api/v1/player/queue", Some(&session)).await;
    assert_eq!(q.status, StatusCode::OK, "{}", q.body);
    assert_eq!(
        q.body["currently_playing"],
        json!({"id": "2kRFrWaLWifQkBFasAWgMo", "name": "Everything In Its Right Place", "artist": "Radiohead",
               "album": "Kid A", "image": "https://i.scdn.co/image/cover", "duration_ms": 250000})
    );
    let items = q.body["queue"].as_array().unwrap();
    assert_eq!(items.len(), 20);
    assert_eq!(items[0]["id"], "6LgJvl0Xdtc73RJ1mZoUnj");
    assert_eq!(
        items[1],
        json!({"id": "ep1", "name": "Ep. 1: Machines", "artist": "Daily Radio", "album": "Daily Radio",
               "image": "https://i.scdn.co/image/ep1", "duration_ms": 3600000})
    );
    assert_eq!(items[19]["name"], "Track 17");
    // Nothing plays: Spotify's 204.
    s.fake.0.lock().unwrap().queue = None;
    let empty = s.get("/api/v1/player/queue", Some(&session)).await;
    assert_eq!((empty.status, empty.body), (StatusCode::OK, json!({"currently_playing": null, "queue": []})));
}

#[tokio::test]
async fn player_commands_reach_spotify_and_its_refusals_say_why() {
    let s = setup(3600).await;
    let session = s.sign_in().await;
    let post = |path: &'static str| s.call(reqwest::Method::POST, path, Some(&session), None);
    for (path, status) in [
        ("/api/v1/player/pause", "paused"),
        ("/api/v1/player/next", "skipped"),
        ("/api/v1/player/previous", "skipped_back"),
    ] {
        let a = post(path).await;
        assert_eq!((a.status, a.body), (StatusCode::OK, json!({"status": status})), "{path}");
    }
    // Spotify's methods, with the empty body's length it asks for.
    let zero = Some("0".to_string());
    assert_eq!(
        s.fake.0.lock().unwrap().commands,
        vec![
            ("PUT".into(), "/v1/me/player/pause".into(), zero.clone()),
            ("POST".into(), "/v1/me/player/next".into(), zero.clone()),
            ("POST".into(), "/v1/me/player/previous".into(), zero),
        ]
    );

    let refuse = |status: u16, message: &str, reason: &str| {
        s.fake.0.lock().unwrap().command_error =
            Some((status, json!({"error": {"status": status, "message": message, "reason": reason}})));
    };
    // A free account.
    refuse(403, "Player command failed: Premium required", "PREMIUM_REQUIRED");
    let a = post("/api/v1/player/pause").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(a.body["detail"].as_str().unwrap().starts_with("Playback control needs Spotify Premium"), "{}", a.body);
    // A state that forbids the command.
    refuse(403, "Player command failed: Restriction violated", "NO_PREV_TRACK");
    let a = post("/api/v1/player/previous").await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(a.body["detail"].as_str().unwrap().contains("NO_PREV_TRACK"), "{}", a.body);
    // No device to command.
    refuse(404, "Player command failed: No active device found", "NO_ACTIVE_DEVICE");
    let a = post("/api/v1/player/next").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
    assert!(a.body["detail"].as_str().unwrap().starts_with("No active Spotify device"), "{}", a.body);
    let a = post("/api/v1/player/play").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "play goes the same way: {}", a.body);
    // Spotify failing is still a bad gateway.
    refuse(500, "Server error", "UNKNOWN");
    assert_eq!(post("/api/v1/player/next").await.status, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn library_and_browse_are_mapped_from_spotify_pages() {
    let s = setup(3600).await;
    let session = s.sign_in().await;
    let query = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };

    let f = s.get("/api/v1/library/followed-artists?limit=2", Some(&session)).await;
    assert_eq!(f.status, StatusCode::OK, "{}", f.body);
    assert_eq!(
        f.body,
        json!({"items": [
                   {"id": RADIOHEAD.0, "name": "Radiohead", "image": "https://i.scdn.co/image/radiohead",
                    "followers": 8500000, "genres": ["art rock", "alternative rock"]},
                   {"id": PORTISHEAD.0, "name": "Portishead", "image": null, "followers": null, "genres": []}],
               "total": 142})
    );

    let a = s.get("/api/v1/library/saved-albums?limit=1&offset=1", Some(&session)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        a.body,
        json!({"items": [{"id": "album-1", "name": "Kid A", "artists": "Radiohead",
                          "image": "https://i.scdn.co/image/cover", "release_date": "2000-10-02",
                          "total_tracks": 10, "added_at": "2024-05-01T12:00:00Z"}],
               "total": 3, "limit": 1, "offset": 1})
    );

    let n = s.get("/api/v1/browse/new-releases?limit=5", Some(&session)).await;
    assert_eq!(n.status, StatusCode::OK, "{}", n.body);
    assert_eq!(
        n.body,
        json!({"items": [{"id": "6GjwtEZcfenmof6l18N7T7", "name": "Kid A Mnesia", "artists": "Radiohead, Portishead",
                          "image": "https://i.scdn.co/image/mnesia", "release_date": "2021-11-05",
                          "total_tracks": 34, "type": "compilation"}]})
    );
    let c = s.get("/api/v1/browse/categories", Some(&session)).await;
    assert_eq!(
        (c.status, c.body),
        (
            StatusCode::OK,
            json!({"items": [{"id": "toplists", "name": "Top Lists", "image": "https://t.scdn.co/media/toplists.jpg"}]})
        )
    );
    assert_eq!(
        s.fake.0.lock().unwrap().queries,
        vec![
            ("/v1/me/following".to_string(), query(&[("type", "artist"), ("limit", "2")])),
            ("/v1/me/albums".to_string(), query(&[("limit", "1"), ("offset", "1")])),
            ("/v1/browse/new-releases".to_string(), query(&[("limit", "5")])),
            ("/v1/browse/categories".to_string(), query(&[("limit", "50")])),
        ]
    );

    // Removed for development-mode apps (Feb 2026): the documented empty lists.
    s.fake.0.lock().unwrap().browse_removed = true;
    for path in ["/api/v1/browse/new-releases", "/api/v1/browse/categories"] {
        let r = s.get(path, Some(&session)).await;
        assert_eq!((r.status, r.body), (StatusCode::OK, json!({"items": []})), "{path}");
    }
}

#[tokio::test]
async fn without_spotify_the_routes_say_so_and_spotify_needs_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = echostats::open_store("memory://").await.unwrap();
    let mut config = ServerConfig::new(SECRET.to_vec());
    config.bind = "127.0.0.1:0".into();
    config.dev_login = true;
    config.rate_limit = None;
    let mut with_spotify = config.clone();
    with_spotify.spotify = Some(spotify_config("http://127.0.0.1:9"));
    let refused = Server::bind(with_spotify, store.clone()).await.err().expect("refused without ENCRYPTION_KEY");
    assert!(refused.to_string().contains("ENCRYPTION_KEY"), "{refused}");

    let server = Server::bind(config, store).await.unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://{}", server.local_addr());
    let login = http.get(format!("{base}/api/v1/auth/login")).send().await.unwrap();
    assert_eq!(login.status(), StatusCode::NOT_IMPLEMENTED);
    let body: Value = login.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("SPOTIFY_CLIENT_ID"), "{body}");
    drop(dir);
}

#[tokio::test]
async fn play_takes_an_optional_json_body() {
    let s = setup(3600).await;
    let session = s.sign_in().await;
    let empty = s.call(reqwest::Method::POST, "/api/v1/player/play", Some(&session), None).await;
    assert_eq!((empty.status, empty.body), (StatusCode::OK, json!({"status": "playing"})));
    let resp = s
        .http
        .post(format!("{}/api/v1/player/play", s.base))
        .header(COOKIE, format!("session={session}"))
        .json(&json!({"uris": ["spotify:track:2kRFrWaLWifQkBFasAWgMo"], "device_id": "abc123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bad = s
        .http
        .post(format!("{}/api/v1/player/play", s.base))
        .header(COOKIE, format!("session={session}"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let plays = s.fake.0.lock().unwrap().plays.clone();
    assert_eq!(plays.len(), 2);
    assert_eq!(plays[0], (String::new(), Value::Null));
    assert_eq!(plays[1], ("device_id=abc123".to_string(), json!({"uris": ["spotify:track:2kRFrWaLWifQkBFasAWgMo"]})));
}

#[tokio::test]
async fn sign_in_syncs_recent_plays_with_genres_and_each_sync_fetches_only_newer_plays() {
    let s = setup(3600).await;
    let session = s.sign_in().await;

    // The callback started an initial sync: the play is in the history, its artist's
    // genres in the catalog.
    let jobs = s.jobs_done(&session).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!((jobs[0]["job_type"].as_str(), jobs[0]["status"].as_str()), (Some("initial"), Some("completed")));
    let steps = jobs[0]["steps"].as_array().unwrap();
    assert!(steps[0]["detail"].as_str().unwrap().starts_with("1 plays from Spotify: 1 added"), "{steps:?}");
    let h = s.get("/api/v1/history", Some(&session)).await;
    assert_eq!(h.body["total"], 1, "{}", h.body);
    let item = &h.body["items"][0];
    assert_eq!(
        (&item["track"]["name"], &item["track"]["artist_name"], &item["source"], &item["context_type"]),
        (&json!("Everything In Its Right Place"), &json!("Radiohead"), &json!("api"), &json!("album"))
    );
    assert_eq!(item["ms_played"], 250000, "the track's length: the API does not say how long it played");
    let g = s.get("/api/v1/genres/distribution?period=week", Some(&session)).await;
    let genres: Vec<&str> = g.body["genres"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(genres.len(), 2, "{}", g.body);
    assert!(genres.contains(&"art rock") && genres.contains(&"alternative rock"), "{genres:?}");
    let first_ms = {
        let f = s.fake.0.lock().unwrap();
        assert_eq!(f.recent_after, vec![None], "the first sync has no cursor");
        let at = f.recent[0]["played_at"].as_str().unwrap().to_string();
        chrono::DateTime::parse_from_rfc3339(&at).unwrap().timestamp_millis()
    };
    let week = s.get("/api/v1/analytics/overview?period=week", Some(&session)).await;
    assert_eq!(week.body["total_tracks_played"], 1);

    // Two more plays; the next sync asks only for plays after the newest one stored.
    {
        let mut f = s.fake.0.lock().unwrap();
        let now = chrono::Utc::now();
        let newer = vec![
            recent_item("3kxfsdsCpFgN412fpnW85Y", "Roads", PORTISHEAD, now - chrono::Duration::minutes(10)),
            recent_item(
                "2kRFrWaLWifQkBFasAWgMo",
                "Everything In Its Right Place",
                RADIOHEAD,
                now - chrono::Duration::hours(1),
            ),
        ];
        f.recent.splice(0..0, newer);
    }
    let t = s.call(reqwest::Method::POST, "/api/v1/sync-jobs/trigger", Some(&session), None).await;
    assert_eq!(t.body["status"], "started", "{}", t.body);
    let jobs = s.jobs_done(&session).await;
    assert_eq!((jobs[0]["job_type"].as_str(), jobs[0]["status"].as_str()), (Some("periodic"), Some("completed")));
    assert_eq!(s.fake.0.lock().unwrap().recent_after[1], Some(first_ms.to_string()));
    let h = s.get("/api/v1/history", Some(&session)).await;
    assert_eq!(h.body["total"], 3, "{}", h.body);
    // The server's caches saw the sync: the overview and the history total are new.
    let week = s.get("/api/v1/analytics/overview?period=week", Some(&session)).await;
    assert_eq!(week.body["total_tracks_played"], 3);

    // A third sync finds nothing new and stores nothing twice.
    s.call(reqwest::Method::POST, "/api/v1/sync-jobs/trigger", Some(&session), None).await;
    let jobs = s.jobs_done(&session).await;
    assert_eq!(jobs[0]["status"], "completed");
    assert_eq!(s.get("/api/v1/history", Some(&session)).await.body["total"], 3);
    // Each artist was looked up once.
    let hits = s.fake.0.lock().unwrap().hits.clone();
    assert_eq!(hits[&format!("/v1/artists/{}", RADIOHEAD.0)], 1);
    assert_eq!(hits[&format!("/v1/artists/{}", PORTISHEAD.0)], 1);
    let sync_stats = s.get("/api/v1/sync-jobs/stats", Some(&session)).await;
    assert_eq!(sync_stats.body["completed"], 3, "{}", sync_stats.body);
}

#[tokio::test]
async fn a_rate_limited_artist_lookup_keeps_the_plays_and_a_user_without_spotify_fails_clearly() {
    let s = setup(3600).await;
    s.fake.0.lock().unwrap().artists_rate_limited = true;
    let session = s.sign_in().await;
    let jobs = s.jobs_done(&session).await;
    assert_eq!(jobs[0]["status"], "completed", "{jobs:?}");
    let enrich = &jobs[0]["steps"][1];
    assert!(enrich["detail"].as_str().unwrap().contains("1 left for the next sync"), "{enrich}");
    assert!(enrich["error"].as_str().unwrap().contains("rate limited"), "{enrich}");
    assert_eq!(s.get("/api/v1/history", Some(&session)).await.body["total"], 1);
    let genres = s.get("/api/v1/genres/distribution?period=week", Some(&session)).await;
    assert_eq!(genres.body["total_genres"], 0);

    // The limit is over (this client waits out Retry-After, so a new server with a new
    // client stands for "hours later"): the next sync, with no new plays, looks the
    // artist up after all.
    s.fake.0.lock().unwrap().artists_rate_limited = false;
    let later = s.restart().await;
    let t = later.call(reqwest::Method::POST, "/api/v1/sync-jobs/trigger", Some(&session), None).await;
    assert_eq!(t.body["status"], "started", "{}", t.body);
    let jobs = later.jobs_done(&session).await;
    assert_eq!(jobs[0]["status"], "completed", "{jobs:?}");
    assert!(jobs[0]["steps"][0]["detail"].as_str().unwrap().starts_with("0 plays"), "{}", jobs[0]);
    let genres = later.get("/api/v1/genres/distribution?period=week", Some(&session)).await;
    assert_eq!(genres.body["total_genres"], 2, "{}", genres.body);

    // Signed in without Spotify: the job fails at once and says why.
    let dev = s.get("/api/v1/auth/dev-login?user=bob", None).await;
    let bob = dev.body["token"].as_str().unwrap().to_string();
    let t = s.call(reqwest::Method::POST, "/api/v1/sync-jobs/trigger", Some(&bob), None).await;
    assert_eq!(t.body["status"], "started");
    let jobs = s.jobs_done(&bob).await;
    assert_eq!(jobs[0]["status"], "failed");
    assert!(jobs[0]["error_message"].as_str().unwrap().contains("not connected"), "{}", jobs[0]);
}

#[tokio::test]
async fn concurrent_requests_with_an_expiring_token_refresh_it_once() {
    let s = setup(3600).await;
    let session = s.sign_in().await;
    let before = s.token_forms().len();
    // The stored access token is about to expire.
    let mut tokens = s.key.open(&s.store.tokens(USER).await.unwrap().unwrap()).unwrap();
    tokens.expires_at = chrono::Utc::now() + chrono::Duration::seconds(10);
    s.store.set_tokens(USER, Some(&s.key.seal(&tokens))).await.unwrap();

    let calls = (0..8).map(|_| s.get("/api/v1/playlists", Some(&session)));
    for a in futures_util::future::join_all(calls).await {
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    }
    let refreshes: Vec<_> = s.token_forms().into_iter().skip(before).collect();
    assert_eq!(refreshes.len(), 1, "one refresh for eight requests: {refreshes:?}");
}

#[tokio::test]
async fn connected_users_are_synced_every_interval() {
    let s = setup_with(3600, |c| c.sync_interval = Some(std::time::Duration::from_secs(1))).await;
    let session = s.sign_in().await;
    // A user without Spotify is left alone by the rounds.
    let dev = s.get("/api/v1/auth/dev-login?user=bob", None).await;
    let bob = dev.body["token"].as_str().unwrap().to_string();
    s.fake.0.lock().unwrap().recent.insert(
        0,
        recent_item("3kxfsdsCpFgN412fpnW85Y", "Roads", PORTISHEAD, chrono::Utc::now() - chrono::Duration::minutes(5)),
    );
    let mut periodic = Vec::new();
    for _ in 0..100 {
        let jobs = s.jobs_done(&session).await;
        periodic = jobs.into_iter().filter(|j| j["job_type"] == "periodic").collect();
        if !periodic.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!periodic.is_empty(), "no periodic sync within 5 s");
    let last = periodic.last().unwrap();
    assert_eq!(last["status"], "completed", "{last}");
    assert_eq!(s.get("/api/v1/history", Some(&session)).await.body["total"], 2);
    assert_eq!(s.get("/api/v1/sync-jobs", Some(&bob)).await.body["total"], 0);
}
