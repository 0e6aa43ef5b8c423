//! The REST server over real HTTP on loopback: each test starts its own server on
//! 127.0.0.1:0 in this process, over a fresh SQLite file, and talks to it with reqwest
//! (the harness is in `common/`).

mod common;

use common::{fixture, sqlite_store, start, start_on, TestServer};
use echostats::store::Store;
use echostats::{PlayKind, PlayOrigin, PlayRecord, PlayRules};
use echostats_http::RateLimit;
use reqwest::header::{ACCEPT_ENCODING, CONTENT_ENCODING, RETRY_AFTER, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A counted track play `hours_ago` hours ago.
fn play(track: &str, artist: &str, hours_ago: i64) -> PlayRecord {
    let mut r = PlayRecord::new(
        chrono::Utc::now() - chrono::Duration::hours(hours_ago),
        180_000,
        PlayKind::Track,
        PlayOrigin::ExtendedHistory,
    );
    r.uri = Some(format!("spotify:track:{}", track.replace(' ', "")));
    r.track_name = Some(track.into());
    r.artist_name = Some(artist.into());
    r.album_name = Some(format!("{artist} album"));
    r
}

async fn insert(store: &dyn Store, user: &str, plays: Vec<PlayRecord>) {
    let mut batch = store.begin_batch(user, &PlayRules::default()).await.unwrap();
    batch.insert(plays).await.unwrap();
    batch.commit().await.unwrap();
}

async fn add_user(store: &dyn Store, id: &str) {
    let user = echostats::User {
        id: id.into(),
        spotify_id: None,
        display_name: Some(id.into()),
        image_url: None,
        product: None,
        created_at: chrono::Utc::now(),
    };
    store.upsert_user(&user).await.unwrap();
}

/// Every data route, with the method it takes.
const DATA_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/analytics/overview"),
    ("GET", "/api/v1/analytics/trend"),
    ("GET", "/api/v1/analytics/rollup-status"),
    ("POST", "/api/v1/analytics/rollup-build"),
    ("POST", "/api/v1/analytics/refresh"),
    ("GET", "/api/v1/tracks/top"),
    ("GET", "/api/v1/tracks/4uLU6hMCjMI75M1A2tKUQC"),
    ("GET", "/api/v1/artists/top"),
    ("GET", "/api/v1/artists/0OdUWJ0sBjDrqHygGUXeCF"),
    ("GET", "/api/v1/albums/top"),
    ("GET", "/api/v1/genres/distribution"),
    ("GET", "/api/v1/history"),
];

#[tokio::test]
async fn health_answers_without_a_session() {
    let s = start(|_| {}).await;
    let a = s.get("/api/health", None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["status"], "healthy");
    assert_eq!(a.body["service"], "echostats-api");
    assert_eq!(a.body["version"], env!("CARGO_PKG_VERSION"));
    let a = s.get("/api/health/ready", None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, serde_json::json!({"status": "ready"}));
    s.stop().await;
}

#[tokio::test]
async fn readiness_checks_redis_when_one_is_configured() {
    // Nothing listens on port 1: not ready, and the reason says which service.
    let down = start(|c| c.redis_url = Some("redis://127.0.0.1:1/".into())).await;
    let a = down.get("/api/health/ready", None).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.body, serde_json::json!({"status": "not_ready", "reason": "cache unreachable"}));
    down.stop().await;

    // A bad URL is refused at start, without echoing it (it can hold a password).
    let mut config = echostats_http::ServerConfig::new(common::SECRET.to_vec());
    config.redis_url = Some("mysql://user:hunter2@host/".into());
    let e = config.validate().unwrap_err();
    assert!(e.contains("Redis URL") && !e.contains("hunter2"), "{e}");

    // A real Redis (CI starts one): ready.
    let Some(url) = echostats_core::conformance::service_url("ECHOSTATS_TEST_REDIS_URL") else { return };
    let up = start(|c| c.redis_url = Some(url)).await;
    let a = up.get("/api/health/ready", None).await;
    assert_eq!((a.status, a.body), (StatusCode::OK, serde_json::json!({"status": "ready"})));
    up.stop().await;
}

/// A fake GitHub answering the "latest release" document; counts the calls.
async fn fake_github(tag: &'static str) -> (String, Arc<std::sync::atomic::AtomicU32>) {
    use poem::listener::{Acceptor, Listener};
    let hits = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = hits.clone();
    let app = poem::Route::new().at(
        "/repos/echostats/echostats/releases/latest",
        poem::get(poem::endpoint::make_sync(move |_| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            poem::web::Json(serde_json::json!({
                "tag_name": tag, "name": tag,
                "html_url": format!("https://github.com/echostats/echostats/releases/tag/{tag}"),
                "body": "Bug fixes and performance improvements", "draft": false, "prerelease": false,
                "published_at": "2026-11-20T12:00:00Z"
            }))
        })),
    );
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    (format!("http://{addr}/repos/echostats/echostats/releases/latest"), hits)
}

#[tokio::test]
async fn update_check_answers_at_once_and_asks_github_at_most_hourly() {
    let (url, hits) = fake_github("v99.1.0").await;
    let s = start(|c| c.releases_url = Some(url)).await;
    let mut latest = Value::Null;
    for _ in 0..200 {
        let a = s.get("/api/health/update", None).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.body["current_version"], env!("CARGO_PKG_VERSION"));
        if !a.body["latest_version"].is_null() {
            latest = a.body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        latest,
        serde_json::json!({
            "current_version": env!("CARGO_PKG_VERSION"), "latest_version": "99.1.0", "update_available": true,
            "release_url": "https://github.com/echostats/echostats/releases/tag/v99.1.0",
            "release_notes": "Bug fixes and performance improvements", "published_at": "2026-11-20T12:00:00Z"
        })
    );
    for _ in 0..5 {
        assert_eq!(s.get("/api/health/update", None).await.body["latest_version"], "99.1.0");
    }
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1, "one check within the hour");
    s.stop().await;

    // Offline (nothing answers): the route still answers at once, with nothing known.
    let offline = start(|c| c.releases_url = Some("http://127.0.0.1:9/releases/latest".into())).await;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let a = offline.get("/api/health/update", None).await;
        assert!(started.elapsed() < Duration::from_secs(2), "never waits for the network");
        assert_eq!((a.body["latest_version"].clone(), a.body["update_available"].clone()), (Value::Null, false.into()));
    }
    offline.stop().await;

    // No URL configured: no check, the same shape.
    let off = start(|_| {}).await;
    let a = off.get("/api/health/update", None).await;
    assert_eq!(a.body["update_available"], false);
    assert!(a.body["latest_version"].is_null() && a.body["release_url"].is_null());
    off.stop().await;
}

#[tokio::test]
async fn every_data_route_answers_401_without_a_session() {
    let s = start(|_| {}).await;
    for (method, path) in DATA_ROUTES {
        let a = s.call(method.parse().unwrap(), path, None, &[]).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{method} {path}: {}", a.body);
        assert_eq!(a.body, serde_json::json!({"detail": "Not authenticated"}), "{method} {path}");
    }
    // A forged or foreign token is no session either.
    let a = s.get("/api/v1/analytics/overview", Some("not.a.jwt")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    s.stop().await;
}

#[tokio::test]
async fn every_route_works_over_the_sample_export() {
    let s = start(|_| {}).await;
    let summary = echostats::ingest::import_paths(
        &*s.store,
        "alice",
        &[fixture()],
        &echostats::ingest::ImportOptions::default(),
        None,
    )
    .await
    .unwrap();
    assert!(summary.outcome.added > 1_000);
    s.store
        .upsert_tracks(&[echostats::Track {
            spotify_id: "4uLU6hMCjMI75M1A2tKUQC".into(),
            name: "Never Gonna Give You Up".into(),
            artists: vec![echostats::ArtistRef { spotify_id: None, name: "Rick Astley".into() }],
            album_name: Some("Whenever You Need Somebody".into()),
            album_id: None,
            album_image_url: None,
            duration_ms: Some(213_573),
            explicit: Some(false),
            audio_features: None,
        }])
        .await
        .unwrap();
    s.store
        .upsert_artists(&[echostats::Artist {
            spotify_id: Some("0OdUWJ0sBjDrqHygGUXeCF".into()),
            name: "Band of Horses".into(),
            genres: vec!["indie rock".into()],
            image_url: None,
        }])
        .await
        .unwrap();
    let alice = s.login("alice").await;
    let t = Some(alice.as_str());

    let o = s.get("/api/v1/analytics/overview?period=all_time&tz=Europe/Berlin", t).await;
    assert_eq!(o.status, StatusCode::OK, "{}", o.body);
    assert_eq!(o.body["period"], "all_time");
    assert_eq!(o.body["timezone"], "Europe/Berlin");
    assert_eq!(o.body["total_tracks_played"].as_i64().unwrap(), summary_plays(&s, "alice").await);
    for key in ["total_ms_played", "total_hours", "unique_tracks", "unique_artists", "unique_albums", "unique_genres"] {
        assert!(o.body[key].is_number(), "{key}: {}", o.body);
    }
    assert_eq!(o.body["hourly_distribution"].as_array().unwrap().len(), 24);
    assert_eq!(o.body["daily_distribution"][0]["day"], "Monday");
    assert_eq!(o.body["top_artists"][0]["rank"], 1);
    assert!(o.body["top_tracks"][0]["play_count"].as_i64().unwrap() > 0);
    assert!(o.body["avg_audio_features"].is_null());
    // Instants as EchoStats writes them: UTC with a `Z`.
    let computed_at = o.body["computed_at"].as_str().unwrap();
    assert!(computed_at.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(computed_at).is_ok(), "{computed_at}");
    // Defaults as EchoStats: all_time, UTC.
    let d = s.get("/api/v1/analytics/overview", t).await;
    assert_eq!((d.body["period"].as_str(), d.body["timezone"].as_str()), (Some("all_time"), Some("UTC")));

    let tr = s.get("/api/v1/analytics/trend?period=month", t).await;
    assert_eq!(tr.status, StatusCode::OK, "{}", tr.body);
    assert_eq!(tr.body["granularity"], "%Y-%m-%d");
    assert!(tr.body["points"].as_array().unwrap().len() >= 30);
    let p = &tr.body["points"][0];
    assert!(p["label"].is_string() && p["plays"].is_number() && p["ms"].is_number() && p["hours"].is_number());

    let rs = s.get("/api/v1/analytics/rollup-status", t).await;
    assert_eq!(rs.status, StatusCode::OK);
    assert_eq!(rs.body["complete"], true);
    assert!(rs.body["total_days"].as_u64().unwrap() > 100);
    assert!(rs.body["last_date"].as_str().unwrap().len() == 10);
    assert_eq!(rs.body["coverage"], 100.0);

    let rb = s.post("/api/v1/analytics/rollup-build", t).await;
    assert_eq!(rb.status, StatusCode::OK);
    assert!(["started", "already_running"].contains(&rb.body["status"].as_str().unwrap()), "{}", rb.body);
    assert!(!rb.body["job_id"].as_str().unwrap().is_empty());

    let rf = s.post("/api/v1/analytics/refresh", t).await;
    assert_eq!(rf.status, StatusCode::OK);
    assert_eq!(rf.body["status"], "refreshed");
    assert_eq!(rf.body["periods"], serde_json::json!(["week", "month", "quarter", "year", "all_time"]));
    let rf = s.post("/api/v1/analytics/refresh?period=week", t).await;
    assert_eq!(rf.body["periods"], serde_json::json!(["week"]));

    let tt = s.get("/api/v1/tracks/top?limit=5", t).await;
    assert_eq!(tt.status, StatusCode::OK, "{}", tt.body);
    assert_eq!(tt.body["items"].as_array().unwrap().len(), 5);
    assert_eq!(tt.body["period"], "all_time");
    assert!(tt.body["total"].as_u64().unwrap() > 5);
    let first = &tt.body["items"][0];
    assert!(first["name"].is_string() && first["artists"][0]["name"].is_string(), "{first}");
    if let Some(id) = first["spotify_id"].as_str() {
        assert!(!id.starts_with("spotify:"), "bare ids: {id}");
        assert_eq!(first["external_url"], format!("https://open.spotify.com/track/{id}"));
    }

    let tk = s.get("/api/v1/tracks/4uLU6hMCjMI75M1A2tKUQC", t).await;
    assert_eq!(tk.status, StatusCode::OK, "{}", tk.body);
    assert_eq!(tk.body["name"], "Never Gonna Give You Up");
    assert_eq!(tk.body["album"]["name"], "Whenever You Need Somebody");
    assert_eq!(tk.body["duration_ms"], 213_573);
    assert_eq!(tk.body["external_url"], "https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC");
    let missing = s.get("/api/v1/tracks/nosuchtrack", t).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body["detail"].as_str().unwrap().ends_with("not found"), "{}", missing.body);

    let ta = s.get("/api/v1/artists/top?period=year&limit=3", t).await;
    assert_eq!(ta.status, StatusCode::OK, "{}", ta.body);
    assert!(ta.body["items"].as_array().unwrap().len() <= 3);
    assert_eq!(ta.body["period"], "year");
    assert!(ta.body["items"][0]["genres"].is_array());

    let ar = s.get("/api/v1/artists/0OdUWJ0sBjDrqHygGUXeCF", t).await;
    assert_eq!(ar.status, StatusCode::OK, "{}", ar.body);
    assert_eq!(ar.body["name"], "Band of Horses");
    assert_eq!(ar.body["genres"], serde_json::json!(["indie rock"]));
    assert_eq!(s.get("/api/v1/artists/nosuchartist", t).await.status, StatusCode::NOT_FOUND);

    let al = s.get("/api/v1/albums/top", t).await;
    assert_eq!(al.status, StatusCode::OK, "{}", al.body);
    assert!(al.body["items"][0]["artists"].is_array());
    assert!(al.body["items"][0].get("type").is_some(), "EchoStats names the album type `type`");

    let g = s.get("/api/v1/genres/distribution?period=all_time", t).await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.body);
    assert_eq!(g.body["period"], "all_time");
    assert_eq!(g.body["total_genres"].as_u64().unwrap(), g.body["genres"].as_array().unwrap().len() as u64);

    let h = s.get("/api/v1/history?page=2&limit=10", t).await;
    assert_eq!(h.status, StatusCode::OK, "{}", h.body);
    assert_eq!((h.body["page"].as_u64(), h.body["limit"].as_u64()), (Some(2), Some(10)));
    let total = h.body["total"].as_u64().unwrap();
    assert_eq!(h.body["pages"].as_u64().unwrap(), total.div_ceil(10));
    let item = &h.body["items"][0];
    assert_eq!(item["user_id"], "alice");
    assert!(item["track"]["name"].is_string(), "{item}");
    // The export's whole-second end time, written as the reference writes it.
    let played_at = item["played_at"].as_str().unwrap();
    assert!(played_at.len() == 20 && played_at.ends_with('Z'), "{played_at}");
    assert_eq!(chrono::DateTime::parse_from_rfc3339(played_at).unwrap().timestamp_subsec_nanos(), 0, "{played_at}");
    assert_eq!(item["source"], "import");
    // Defaults: page 1, 50 per page.
    let h = s.get("/api/v1/history", t).await;
    assert_eq!((h.body["page"].as_u64(), h.body["limit"].as_u64()), (Some(1), Some(50)));
    // Filters: the artist of the first entry, within one day of it.
    let artist = h.body["items"][0]["track"]["artist_name"].as_str().unwrap().to_string();
    let day = &h.body["items"][0]["played_at"].as_str().unwrap()[..10];
    let url = format!("/api/v1/history?artist={}&start_date={day}&end_date={day}", artist.replace(' ', "%20"));
    let f = s.get(&url, t).await;
    assert_eq!(f.status, StatusCode::OK, "{}", f.body);
    let items = f.body["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(items
        .iter()
        .all(|i| i["track"]["artist_name"] == artist.as_str() && i["played_at"].as_str().unwrap().starts_with(day)));
    s.stop().await;
}

/// Counted plays of a user, as the core computes them.
async fn summary_plays(s: &TestServer, user: &str) -> i64 {
    let req = echostats::analytics::OverviewRequest::new(echostats::analytics::Period::AllTime);
    echostats::analytics::overview(&*s.store, user, &req).await.unwrap().total_tracks_played
}

#[tokio::test]
async fn users_see_only_their_own_plays() {
    let s = start(|_| {}).await;
    let alice = s.login("alice").await;
    let bob = s.login("bob").await;
    insert(&*s.store, "alice", vec![play("Song A", "Artist A", 1), play("Song A", "Artist A", 5)]).await;
    insert(
        &*s.store,
        "bob",
        vec![play("Song B", "Artist B", 2), play("Song C", "Artist B", 3), play("Song B", "Artist B", 4)],
    )
    .await;

    for (token, user, plays, track, artist) in
        [(&alice, "alice", 2, "Song A", "Artist A"), (&bob, "bob", 3, "Song B", "Artist B")]
    {
        let t = Some(token.as_str());
        let o = s.get("/api/v1/analytics/overview?period=week", t).await;
        assert_eq!(o.body["total_tracks_played"], plays, "{user}: {}", o.body);
        assert_eq!(o.body["top_tracks"][0]["name"], track, "{user}");
        let h = s.get("/api/v1/history", t).await;
        assert_eq!(h.body["total"], plays, "{user}");
        assert!(h.body["items"].as_array().unwrap().iter().all(|i| i["user_id"] == user), "{user}: {}", h.body);
        let a = s.get("/api/v1/artists/top", t).await;
        assert_eq!(a.body["items"].as_array().unwrap().len(), 1, "{user}: {}", a.body);
        assert_eq!(a.body["items"][0]["name"], artist);
        // Another user's name as a filter finds nothing.
        let other = if user == "alice" { "Artist%20B" } else { "Artist%20A" };
        let h = s.get(&format!("/api/v1/history?artist={other}"), t).await;
        assert_eq!(h.body["total"], 0, "{user}");
    }
    s.stop().await;
}

#[tokio::test]
async fn bad_parameters_are_422_in_the_echostats_list_shape() {
    let s = start(|_| {}).await;
    let t = s.login("alice").await;
    let t = Some(t.as_str());
    let cases: &[(&str, &str)] = &[
        ("/api/v1/analytics/overview?period=decade", "period"),
        ("/api/v1/analytics/trend?period=WEEK", "period"),
        ("/api/v1/analytics/overview?tz=Mars/Olympus_Mons", "tz"),
        ("/api/v1/analytics/trend?tz=", "tz"),
        ("/api/v1/tracks/top?limit=0", "limit"),
        ("/api/v1/artists/top?limit=101", "limit"),
        ("/api/v1/albums/top?limit=ten", "limit"),
        ("/api/v1/genres/distribution?period=forever", "period"),
        ("/api/v1/history?page=0", "page"),
        ("/api/v1/history?limit=500", "limit"),
        ("/api/v1/history?start_date=yesterday", "start_date"),
        ("/api/v1/history?end_date=2025-13-45", "end_date"),
    ];
    for (path, param) in cases {
        let a = s.get(path, t).await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {}", a.body);
        let issue = &a.body["detail"][0];
        assert_eq!(issue["loc"], serde_json::json!(["query", param]), "{path}: {}", a.body);
        assert_eq!(issue["type"], "value_error", "{path}");
        assert!(!issue["msg"].as_str().unwrap().is_empty(), "{path}");
        assert_eq!(a.body["detail"].as_array().unwrap().len(), 1, "{path}");
    }
    let a = s.get("/api/v1/tracks/top?limit=101", t).await;
    assert_eq!(a.body["detail"][0]["msg"], "ensure this value is less than or equal to 100");
    let a = s.get("/api/v1/analytics/overview?period=decade", t).await;
    assert_eq!(
        a.body,
        serde_json::json!({"detail": [{
            "loc": ["query", "period"],
            "msg": "value is not a valid enumeration member; permitted: 'week', 'month', 'quarter', 'year', 'all_time'",
            "type": "value_error"
        }]})
    );
    let a = s.post("/api/v1/auth/dev-login?user=has%20space", None).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(a.body["detail"][0]["loc"], serde_json::json!(["query", "user"]));
    // Unknown routes and methods are FastAPI-shaped too.
    let a = s.get("/api/v1/nothing-here", t).await;
    assert_eq!((a.status, &a.body), (StatusCode::NOT_FOUND, &serde_json::json!({"detail": "Not Found"})));
    let a = s.call(Method::DELETE, "/api/v1/history", t, &[]).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.body["detail"], "Method Not Allowed");
    s.stop().await;
}

#[tokio::test]
async fn sessions_cookies_logout_and_dev_login_switch() {
    let s = start(|_| {}).await;
    let a = s.post("/api/v1/auth/dev-login?user=carol", None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["status"], "authenticated");
    assert_eq!(a.body["user"]["id"], "carol");
    let cookie = a.headers[SET_COOKIE].to_str().unwrap().to_string();
    let token = a.body["token"].as_str().unwrap();
    assert!(cookie.starts_with(&format!("session={token}")), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let https = s.call(Method::POST, "/api/v1/auth/dev-login", None, &[("x-forwarded-proto", "https")]).await;
    assert!(https.headers[SET_COOKIE].to_str().unwrap().contains("Secure"));
    assert_eq!(https.body["user"]["id"], "local", "the configured dev-login user");
    // GET works too (EchoStats documents dev-login as GET).
    assert_eq!(s.get("/api/v1/auth/dev-login", None).await.status, StatusCode::OK);

    // Status: cookie, bearer, nothing.
    let st = s.get("/api/v1/auth/status", Some(token)).await;
    assert_eq!(st.body["authenticated"], true);
    assert_eq!(st.body["user"]["id"], "carol");
    assert!(st.body["token_expires_at"].is_null() && st.body.get("token_expires_at").is_some(), "no Spotify tokens");
    let expires = chrono::Utc::now() + chrono::Duration::hours(1);
    let sealed = echostats::EncryptedTokens { ciphertext: vec![1, 2, 3], expires_at: expires };
    s.store.set_tokens("carol", Some(&sealed)).await.unwrap();
    let st = s.get("/api/v1/auth/status", Some(token)).await;
    let at = chrono::DateTime::parse_from_rfc3339(st.body["token_expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(at.timestamp(), expires.timestamp(), "{}", st.body);
    let bearer = format!("Bearer {token}");
    let st = s.call(Method::GET, "/api/v1/analytics/rollup-status", None, &[("authorization", &bearer)]).await;
    assert_eq!(st.status, StatusCode::OK, "{}", st.body);
    let st = s.get("/api/v1/auth/status", None).await;
    assert_eq!(st.body, serde_json::json!({"authenticated": false}));

    let out = s.post("/api/v1/auth/logout", Some(token)).await;
    assert_eq!(out.body, serde_json::json!({"status": "logged_out"}));
    let removal = out.headers[SET_COOKIE].to_str().unwrap();
    assert!(removal.starts_with("session=;") && removal.contains("Max-Age=0"), "{removal}");
    s.stop().await;

    let s = start(|c| c.dev_login = false).await;
    let a = s.post("/api/v1/auth/dev-login", None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "dev-login is off by default: {}", a.body);
    assert_eq!(a.body["detail"], "Not Found");
    s.stop().await;
}

#[tokio::test]
async fn single_user_auto_login_only_with_exactly_one_user() {
    let s = start(|c| {
        c.single_user_auto_login = true;
        c.dev_login = false;
    })
    .await;
    assert_eq!(s.get("/api/v1/history", None).await.status, StatusCode::UNAUTHORIZED, "no user yet");
    insert(&*s.store, "solo", vec![play("Song", "Artist", 1)]).await;
    add_user(&*s.store, "solo").await;
    let h = s.get("/api/v1/history", None).await;
    assert_eq!(h.status, StatusCode::OK, "{}", h.body);
    assert_eq!(h.body["total"], 1);
    assert_eq!(s.get("/api/v1/auth/status", None).await.body["user"]["id"], "solo");
    add_user(&*s.store, "second").await;
    assert_eq!(s.get("/api/v1/history", None).await.status, StatusCode::UNAUTHORIZED, "two users");
    s.stop().await;
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let s = start(|c| c.rate_limit = Some(RateLimit { requests: 3, window: Duration::from_secs(60) })).await;
    for i in 0..3 {
        assert_eq!(s.get("/api/health", None).await.status, StatusCode::OK, "request {i}");
    }
    let a = s.get("/api/health", None).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = a.headers[RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "one request's share of the window: {retry}");
    assert!(a.body["detail"].as_str().unwrap().starts_with("Rate limit exceeded"), "{}", a.body);
    assert!(a.headers.contains_key("x-request-id"), "429s pass through the outer middleware");
    s.stop().await;
}

#[tokio::test]
async fn an_unreachable_database_answers_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gone.db").display());
    let sql = Arc::new(echostats_store_sql::SqlStore::open(&url).await.unwrap());
    let s = start_on(sql.clone(), dir, |_| {}).await;
    let token = s.login("alice").await;
    sql.close().await;

    let ready = s.get("/api/health/ready", None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["status"], "not_ready");
    assert!(ready.body["reason"].as_str().unwrap().contains("database"), "{}", ready.body);
    for path in ["/api/v1/analytics/overview", "/api/v1/history", "/api/v1/tracks/top"] {
        let a = s.get(path, Some(&token)).await;
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {}", a.body);
        assert_eq!(a.body, serde_json::json!({"detail": "Service temporarily unavailable"}));
        assert!(a.headers[RETRY_AFTER].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    }
    // The health check itself does not need the database.
    assert_eq!(s.get("/api/health", None).await.status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn slow_requests_time_out_with_504() {
    // Signed in on a normal server; the token is good on the impatient one (same key, same store).
    let normal = start(|_| {}).await;
    let t = normal.login("alice").await;
    let s = start_on(normal.store.clone(), tempfile::tempdir().unwrap(), |c| {
        c.request_timeout = Duration::from_nanos(1);
        // Every overview from the store: a cached one would be answered without waiting.
        c.overview_max_age = Duration::ZERO;
    })
    .await;
    // A limit of 1 ns times out a request as soon as it waits once (for the database).
    // One whose every step is ready when first polled (SQLite's thread answered before
    // it was asked again) is answered in time, which happens now and then on two busy
    // cores: asked again until it waits. The middleware's unit test is deterministic.
    let mut a = s.get("/api/v1/analytics/overview", Some(&t)).await;
    for _ in 0..20 {
        if a.status != StatusCode::OK {
            break;
        }
        a = s.get("/api/v1/analytics/overview", Some(&t)).await;
    }
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT, "{}", a.body);
    assert_eq!(a.body, serde_json::json!({"detail": "Request timeout"}));
    // The slow routes have their own limit.
    let a = s.post("/api/v1/analytics/rollup-build", Some(&t)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    s.stop().await;
    normal.stop().await;
}

#[tokio::test]
async fn request_ids_security_headers_cors_and_gzip() {
    let s = start(|_| {}).await;
    let a = s.call(Method::GET, "/api/health", None, &[("x-request-id", "test-req-42")]).await;
    assert_eq!(a.headers["x-request-id"], "test-req-42");
    let a = s.get("/api/health", None).await;
    let generated = a.headers["x-request-id"].to_str().unwrap();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    assert_eq!(a.headers["x-content-type-options"], "nosniff");
    assert_eq!(a.headers["x-frame-options"], "DENY");
    assert_eq!(a.headers["referrer-policy"], "strict-origin-when-cross-origin");
    // Errors carry them too.
    let a = s.get("/api/v1/history", None).await;
    assert!(a.headers.contains_key("x-request-id") && a.headers.contains_key("x-frame-options"));

    let pre = s
        .call(
            Method::OPTIONS,
            "/api/v1/history",
            None,
            &[("origin", "http://localhost:3000"), ("access-control-request-method", "GET")],
        )
        .await;
    assert!(pre.status.is_success(), "{}", pre.status);
    assert_eq!(pre.headers["access-control-allow-origin"], "http://localhost:3000");
    assert_eq!(pre.headers["access-control-allow-credentials"], "true");

    // gzip: reqwest is built without decompression, so the raw encoding is visible.
    let resp = s.http.get(format!("{}/api/openapi.json", s.base)).header(ACCEPT_ENCODING, "gzip").send().await.unwrap();
    assert_eq!(resp.headers()[CONTENT_ENCODING], "gzip");
    let compressed = resp.bytes().await.unwrap();
    let mut json = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&compressed[..]), &mut json).unwrap();
    assert!(compressed.len() < json.len() / 3, "{} of {}", compressed.len(), json.len());
    let spec: Value = serde_json::from_str(&json).unwrap();
    assert!(spec["paths"]["/api/v1/history"].is_object());
    s.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_by_route() {
    let s = start(|_| {}).await;
    let t = s.login("alice").await;
    s.get("/api/health", None).await;
    s.get("/api/v1/tracks/sometrack", Some(&t)).await;
    let resp = s.http.get(format!("{}/metrics", s.base)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    let has = |needle: &str| text.lines().any(|l| l.starts_with("http_requests_total{") && l.contains(needle));
    assert!(has(r#"path="/api/health""#), "{text}");
    assert!(has(r#"path="/api/v1/tracks/:"#) && has(r#"status="404""#), "{text}");
    assert!(!text.contains("sometrack"), "route patterns, not ids: {text}");
    assert!(text.contains("http_request_duration_seconds_bucket"), "{text}");
    s.stop().await;
}

#[tokio::test]
async fn docs_are_served() {
    let s = start(|_| {}).await;
    for (path, needle) in [("/api/docs", "swagger"), ("/api/redoc", "redoc")] {
        let resp = s.http.get(format!("{}{path}", s.base)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "{path}");
        assert!(resp.text().await.unwrap().to_lowercase().contains(needle), "{path}");
    }
    let spec = s.get("/api/openapi.json", None).await;
    assert_eq!(spec.status, StatusCode::OK);
    assert_eq!(spec.body, serde_json::from_str::<Value>(&echostats_http::openapi_spec()).unwrap());
    for path in ["/api/health", "/api/v1/analytics/overview", "/api/v1/tracks/{track_id}", "/api/v1/auth/dev-login"] {
        assert!(spec.body["paths"][path].is_object(), "{path} in the spec");
    }
    s.stop().await;
}

/// The generated OpenAPI document is checked in (`echostats-http/openapi.json`), so a
/// change of the API shows in review. `UPDATE_OPENAPI=1` rewrites it.
#[test]
fn openapi_spec_matches_the_checked_in_copy() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    let generated: Value = serde_json::from_str(&echostats_http::openapi_spec()).unwrap();
    let pretty = serde_json::to_string_pretty(&generated).unwrap() + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| !v.is_empty() && v != "0") {
        std::fs::write(&path, &pretty).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == pretty,
        "{} is not the spec the server generates. If the API change is intended, regenerate it with\n  \
         UPDATE_OPENAPI=1 cargo test -p echostats-http --test server openapi_spec\nand commit the file.",
        path.display()
    );
}

#[tokio::test]
async fn demo_import_happens_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    let rules = PlayRules::default();
    let export = dir.path().join("export");
    echostats_http::demo::write_sample_export(&export, chrono::Utc::now()).unwrap();
    let first = echostats_http::demo::import_if_empty(&*store, "demo", &export, &rules).await.unwrap();
    assert!(first.expect("imported").outcome.added > 1_000);
    let second = echostats_http::demo::import_if_empty(&*store, "demo", &export, &rules).await.unwrap();
    assert!(second.is_none(), "the demo user has history already");
}
