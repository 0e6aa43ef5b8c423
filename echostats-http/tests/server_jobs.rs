//! Jobs, API logs and history uploads over real HTTP on loopback: `/api/v1/sync-jobs`,
//! `/api/v1/api-logs`, `POST /api/v1/history/import`, `GET /api/v1/history/export` and
//! the rollup-build job.

mod common;

use chrono::{Duration as Age, Utc};
use common::{fixture, sqlite_store, start, start_on, TestServer};
use echostats::{ApiCallLog, JobStatus, JobType, SyncJob};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

fn job(user: &str, id: &str, job_type: JobType, status: JobStatus, minutes_ago: i64) -> SyncJob {
    let created = Utc::now() - Age::minutes(minutes_ago);
    let ended = !status.is_active();
    SyncJob {
        id: id.into(),
        user_id: user.into(),
        job_type,
        status,
        items_processed: if status == JobStatus::Completed { 10 } else { 0 },
        items_total: 10,
        error_message: (status == JobStatus::Failed).then(|| "boom".to_string()),
        steps: vec![],
        created_at: created,
        started_at: Some(created),
        completed_at: ended.then_some(created + Age::seconds(5)),
    }
}

fn call(user: &str, id: usize, method: &str, endpoint: &str, status: i32, seconds_ago: i64) -> ApiCallLog {
    ApiCallLog {
        id: format!("{user}-{id}"),
        user_id: Some(user.into()),
        service: "spotify".into(),
        method: method.into(),
        endpoint: endpoint.into(),
        status_code: status,
        latency_ms: 100.0,
        error: (status >= 400).then(|| format!("HTTP {status}")),
        timestamp: Utc::now() - Age::seconds(seconds_ago),
    }
}

/// The sample export as one zip, as Spotify delivers `my_spotify_data.zip`.
fn zipped_fixture() -> Vec<u8> {
    fn add(zip: &mut zip::ZipWriter<std::io::Cursor<Vec<u8>>>, root: &Path, dir: &Path) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                add(zip, root, &path);
                continue;
            }
            let name = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
            zip.start_file(format!("Spotify Data/{name}"), options).unwrap();
            zip.write_all(&std::fs::read(&path).unwrap()).unwrap();
        }
    }
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    add(&mut zip, &fixture(), &fixture());
    zip.finish().unwrap().into_inner()
}

async fn counted_plays(s: &TestServer, token: &str) -> i64 {
    let o = s.get("/api/v1/analytics/overview", Some(token)).await;
    assert_eq!(o.status, StatusCode::OK, "{}", o.body);
    o.body["total_tracks_played"].as_i64().unwrap()
}

#[tokio::test]
async fn job_and_log_routes_need_a_session() {
    let s = start(|_| {}).await;
    for (method, path) in [
        ("GET", "/api/v1/sync-jobs"),
        ("GET", "/api/v1/sync-jobs/stats"),
        ("POST", "/api/v1/sync-jobs/trigger"),
        ("GET", "/api/v1/api-logs"),
        ("GET", "/api/v1/api-logs/stats"),
        ("POST", "/api/v1/history/import"),
        ("GET", "/api/v1/history/export"),
    ] {
        let a = s.call(method.parse().unwrap(), path, None, &[]).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{method} {path}: {}", a.body);
        assert_eq!(a.body, json!({"detail": "Not authenticated"}), "{method} {path}");
    }
    let a = s.upload("/api/v1/history/import", None, "file", "endsong_0.json", b"[]").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    s.stop().await;
}

#[tokio::test]
async fn sync_jobs_are_paged_filtered_counted_and_private() {
    let s = start(|_| {}).await;
    let alice = s.login("alice").await;
    let bob = s.login("bob").await;
    // 25 jobs of alice, newest first: a-0 is the newest.
    for i in 0..25 {
        let (job_type, status) = match i % 5 {
            0 => (JobType::Import, JobStatus::Completed),
            1 => (JobType::Periodic, JobStatus::Completed),
            2 => (JobType::Periodic, JobStatus::Failed),
            3 => (JobType::RollupBuild, JobStatus::Completed),
            _ => (JobType::Initial, JobStatus::Completed),
        };
        s.store.create_job(&job("alice", &format!("a-{i}"), job_type, status, i as i64 + 1), false).await.unwrap();
    }
    s.store.create_job(&job("alice", "a-running", JobType::Periodic, JobStatus::Running, 0), true).await.unwrap();
    s.store.create_job(&job("bob", "b-0", JobType::Import, JobStatus::Completed, 1), false).await.unwrap();
    let t = Some(alice.as_str());

    let a = s.get("/api/v1/sync-jobs", t).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        (a.body["total"].as_u64(), a.body["page"].as_u64(), a.body["pages"].as_u64()),
        (Some(26), Some(1), Some(2))
    );
    assert_eq!(a.body["items"].as_array().unwrap().len(), 20, "default limit 20");
    assert_eq!(a.body.as_object().unwrap().len(), 4, "items, total, page, pages: {}", a.body);
    let first = &a.body["items"][0];
    assert_eq!(first["id"], "a-running");
    let keys: Vec<&str> = first.as_object().unwrap().keys().map(String::as_str).collect();
    for key in [
        "id",
        "job_type",
        "status",
        "items_processed",
        "items_total",
        "error_message",
        "started_at",
        "completed_at",
        "created_at",
        "steps",
    ] {
        assert!(keys.contains(&key), "{key} in {first}");
    }
    assert!(first["completed_at"].is_null() && first["error_message"].is_null());
    assert_eq!(a.body["items"][1]["id"], "a-0");

    let p = s.get("/api/v1/sync-jobs?page=3&limit=10", t).await;
    assert_eq!((p.body["page"].as_u64(), p.body["pages"].as_u64()), (Some(3), Some(3)));
    assert_eq!(p.body["items"].as_array().unwrap().len(), 6);
    let far = s.get("/api/v1/sync-jobs?page=9", t).await;
    assert_eq!((far.status, far.body["items"].as_array().unwrap().len()), (StatusCode::OK, 0));

    let f = s.get("/api/v1/sync-jobs?status=failed", t).await;
    assert_eq!(f.body["total"], 5);
    assert!(f.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["status"] == "failed" && j["error_message"] == "boom"));
    let f = s.get("/api/v1/sync-jobs?job_type=periodic&status=completed&limit=100", t).await;
    assert_eq!(f.body["total"], 5);
    assert!(f.body["items"].as_array().unwrap().iter().all(|j| j["job_type"] == "periodic"));
    let f = s.get("/api/v1/sync-jobs?job_type=rollup_build", t).await;
    assert_eq!(f.body["total"], 5);

    for (path, param) in [
        ("/api/v1/sync-jobs?status=done", "status"),
        ("/api/v1/sync-jobs?job_type=nightly", "job_type"),
        ("/api/v1/sync-jobs?limit=101", "limit"),
        ("/api/v1/sync-jobs?limit=0", "limit"),
        ("/api/v1/sync-jobs?page=0", "page"),
    ] {
        let a = s.get(path, t).await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {}", a.body);
        assert_eq!(a.body["detail"][0]["loc"], json!(["query", param]), "{path}: {}", a.body);
        assert_eq!(a.body["detail"][0]["type"], "value_error");
    }
    let a = s.get("/api/v1/sync-jobs?status=done", t).await;
    assert!(a.body["detail"][0]["msg"].as_str().unwrap().contains("pending, running, completed, failed"), "{}", a.body);

    let st = s.get("/api/v1/sync-jobs/stats", t).await;
    assert_eq!(st.status, StatusCode::OK, "{}", st.body);
    let keys: Vec<&str> = st.body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 6, "{}", st.body);
    assert_eq!(
        (&st.body["total_jobs"], &st.body["completed"], &st.body["failed"], &st.body["running"]),
        (&json!(26), &json!(20), &json!(5), &json!(1))
    );
    assert_eq!(st.body["total_items_synced"], 200);
    let last = chrono::DateTime::parse_from_rfc3339(st.body["last_sync_at"].as_str().unwrap()).unwrap();
    assert!(Utc::now().signed_duration_since(last) < Age::minutes(2), "a-0 ended about a minute ago: {last}");

    // Bob sees his one job, and none of alice's.
    let b = s.get("/api/v1/sync-jobs", Some(&bob)).await;
    assert_eq!(b.body["total"], 1);
    assert_eq!(b.body["items"][0]["id"], "b-0");
    assert_eq!(s.get("/api/v1/sync-jobs/stats", Some(&bob)).await.body["total_jobs"], 1);
    let none = s.get("/api/v1/sync-jobs/stats", Some(&s.login("carol").await)).await;
    assert_eq!(
        none.body,
        json!({"total_jobs": 0, "completed": 0, "failed": 0, "running": 0, "total_items_synced": 0, "last_sync_at": null})
    );
    s.stop().await;
}

#[tokio::test]
async fn trigger_starts_a_sync_that_fails_without_spotify_or_reports_the_running_one() {
    let s = start(|_| {}).await;
    let alice = s.login("alice").await;
    let a = s.post("/api/v1/sync-jobs/trigger", Some(&alice)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["status"], "started");
    assert_eq!(a.body["message"], "Sync job started");
    let id = a.body["job_id"].as_str().unwrap().to_string();
    let done = s.wait_for_job(&id, &alice).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["job_type"], "periodic");
    assert_eq!(done["error_message"], "Spotify account not connected: sign in with Spotify first");
    assert!(done["completed_at"].is_string() && done["started_at"].is_string(), "{done}");

    // While one runs, a trigger names it.
    let bob = s.login("bob").await;
    s.store.create_job(&job("bob", "b-sync", JobType::Periodic, JobStatus::Running, 0), true).await.unwrap();
    let a = s.post("/api/v1/sync-jobs/trigger", Some(&bob)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!((a.body["status"].as_str(), a.body["job_id"].as_str()), (Some("already_running"), Some("b-sync")));
    assert_eq!(a.body.as_object().unwrap().len(), 3, "{}", a.body);
    // The initial sync after sign-in does the same work: a trigger waits for it too.
    let carol = s.login("carol").await;
    s.store.create_job(&job("carol", "c-initial", JobType::Initial, JobStatus::Running, 0), true).await.unwrap();
    let a = s.post("/api/v1/sync-jobs/trigger", Some(&carol)).await;
    assert_eq!((a.body["status"].as_str(), a.body["job_id"].as_str()), (Some("already_running"), Some("c-initial")));
    // Alice's sync is not in bob's way, nor his in hers.
    let again = s.post("/api/v1/sync-jobs/trigger", Some(&alice)).await;
    assert_eq!(again.body["status"], "started");
    s.stop().await;
}

#[tokio::test]
async fn api_logs_are_paged_filtered_aggregated_and_private() {
    let s = start(|_| {}).await;
    let alice = s.login("alice").await;
    let bob = s.login("bob").await;
    let mut calls = Vec::new();
    for i in 0..60 {
        let (method, endpoint, status) = match i % 6 {
            0..=2 => ("GET", "/v1/me/player/recently-played", 200),
            3 => ("GET", "/v1/audio-features", 200),
            4 => ("PUT", "/v1/me/player/play", 429),
            _ => ("GET", "/v1/artists", 502),
        };
        calls.push(call("alice", i, method, endpoint, status, i as i64));
    }
    calls.push(call("alice", 60, "GET", "/v1/me", 0, 100));
    calls.push(call("alice", 61, "GET", "/v1/me", 304, 101));
    s.store.log_api_calls(&calls).await.unwrap();
    s.store.log_api_calls(&[call("bob", 0, "GET", "/v1/me", 200, 1)]).await.unwrap();
    let t = Some(alice.as_str());

    let a = s.get("/api/v1/api-logs", t).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        (a.body["total"].as_u64(), a.body["page"].as_u64(), a.body["limit"].as_u64()),
        (Some(62), Some(1), Some(50))
    );
    assert_eq!(a.body["pages"], 2);
    assert_eq!(a.body["items"].as_array().unwrap().len(), 50);
    assert_eq!(a.body.as_object().unwrap().len(), 5, "{}", a.body);
    let first = &a.body["items"][0];
    assert_eq!(first["id"], "alice-0", "newest first");
    for key in ["service", "method", "endpoint", "status_code", "latency_ms", "error", "timestamp"] {
        assert!(first.get(key).is_some(), "{key} in {first}");
    }
    let p = s.get("/api/v1/api-logs?page=2&limit=50", t).await;
    assert_eq!(p.body["items"].as_array().unwrap().len(), 12);
    assert_eq!(s.get("/api/v1/api-logs?limit=200", t).await.status, StatusCode::OK);

    for (path, expected) in [
        ("/api/v1/api-logs?status_min=400", 20),
        ("/api/v1/api-logs?status_min=400&status_max=499", 10),
        ("/api/v1/api-logs?method=put", 10),
        ("/api/v1/api-logs?endpoint_contains=player", 40),
        ("/api/v1/api-logs?service=spotify", 62),
        ("/api/v1/api-logs?service=lastfm", 0),
    ] {
        assert_eq!(s.get(path, t).await.body["total"], expected, "{path}");
    }

    for (path, param) in [
        ("/api/v1/api-logs?limit=201", "limit"),
        ("/api/v1/api-logs?page=0", "page"),
        ("/api/v1/api-logs?status_min=abc", "status_min"),
    ] {
        let a = s.get(path, t).await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {}", a.body);
        assert_eq!(a.body["detail"][0]["loc"], json!(["query", param]), "{path}");
    }

    let st = s.get("/api/v1/api-logs/stats", t).await;
    assert_eq!(st.status, StatusCode::OK, "{}", st.body);
    assert_eq!(st.body["total_calls"], 62);
    assert_eq!(st.body["error_count"], 21, "4xx, 5xx and no answer: {}", st.body);
    assert_eq!(st.body["rate_limit_count"], 10);
    assert_eq!(st.body["success_rate"], 66.1);
    assert_eq!(st.body["avg_latency_ms"], 100.0);
    assert_eq!(st.body["status_distribution"], json!({"2xx": 40, "3xx": 1, "4xx": 10, "5xx": 10, "none": 1}));
    assert_eq!(st.body["top_endpoints"][0], json!({"endpoint": "GET /v1/me/player/recently-played", "count": 30}));
    assert_eq!(st.body["top_endpoints"].as_array().unwrap().len(), 5);

    let b = s.get("/api/v1/api-logs", Some(&bob)).await;
    assert_eq!((b.body["total"].as_u64(), b.body["items"][0]["id"].as_str()), (Some(1), Some("bob-0")));
    let b = s.get("/api/v1/api-logs/stats", Some(&bob)).await;
    assert_eq!(b.body["status_distribution"], json!({"2xx": 1}));
    s.stop().await;
}

#[tokio::test]
async fn an_uploaded_export_is_imported_by_a_job_once() {
    let uploads = tempfile::tempdir().unwrap();
    let s = start(|c| c.upload_dir = Some(uploads.path().to_path_buf())).await;
    let alice = s.login("alice").await;
    assert_eq!(counted_plays(&s, &alice).await, 0);
    let zip = zipped_fixture();

    let a = s.upload("/api/v1/history/import", Some(&alice), "file", "my_spotify_data.zip", &zip).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    assert_eq!(a.body["status"], "pending");
    assert_eq!((a.body["items_processed"].as_i64(), a.body["items_total"].as_i64()), (Some(0), Some(0)));
    let id = a.body["job_id"].as_str().unwrap().to_string();
    let done = s.wait_for_job(&id, &alice).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["job_type"], "import");
    assert!(done["error_message"].is_null());
    let processed = done["items_processed"].as_i64().unwrap();
    assert!(processed > 1_000, "{done}");
    assert!(done["items_total"].as_i64().unwrap() >= processed, "{done}");
    let steps = done["steps"].as_array().unwrap();
    assert!(steps.len() >= 8, "one step per file: {done}");
    assert!(steps.iter().all(|st| st["action"] == "import_file" && st["status"] == "completed"), "{done}");
    let detail = |name: &str| {
        steps.iter().find_map(|st| st["detail"].as_str().filter(|d| d.contains(name)).map(String::from)).unwrap()
    };
    let audio = detail("Streaming_History_Audio_2024-2025_0.json");
    assert!(audio.starts_with("my_spotify_data.zip!Spotify Data/"), "named as uploaded, not by its temp path: {audio}");
    assert!(audio.contains("plays added") && audio.contains("duplicates") && audio.contains("rejected"), "{audio}");
    assert!(detail("Streaming_History_Video").contains("skipped"));
    assert!(detail("YourLibrary.json").contains("skipped"));

    let plays = counted_plays(&s, &alice).await;
    assert!(plays > 1_000, "{plays}");
    let req = echostats::analytics::OverviewRequest::new(echostats::analytics::Period::AllTime);
    assert_eq!(plays, echostats::analytics::overview(&*s.store, "alice", &req).await.unwrap().total_tracks_played);
    let stats = s.get("/api/v1/sync-jobs/stats", Some(&alice)).await;
    assert_eq!(stats.body["completed"], 1);
    assert_eq!(stats.body["total_items_synced"].as_i64(), Some(processed));

    // The same export again adds nothing.
    let a = s.upload("/api/v1/history/import", Some(&alice), "file", "my_spotify_data.zip", &zip).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    let again = s.wait_for_job(a.body["job_id"].as_str().unwrap(), &alice).await;
    assert_eq!(again["status"], "completed", "{again}");
    for st in again["steps"].as_array().unwrap() {
        let d = st["detail"].as_str().unwrap();
        assert!(d.contains("skipped") || d.contains(" 0 plays added"), "{d}");
    }
    assert_eq!(counted_plays(&s, &alice).await, plays);
    assert_eq!(std::fs::read_dir(uploads.path()).unwrap().count(), 0, "uploads are deleted when their job ends");

    // A single .json works too; bob's import is his alone.
    let bob = s.login("bob").await;
    let file = std::fs::read(fixture().join("Spotify Extended Streaming History/endsong_1.json")).unwrap();
    let a = s.upload("/api/v1/history/import", Some(&bob), "file", "endsong_1.json", &file).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    let done = s.wait_for_job(a.body["job_id"].as_str().unwrap(), &bob).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["steps"].as_array().unwrap().len(), 1);
    assert!(done["steps"][0]["detail"].as_str().unwrap().starts_with("endsong_1.json (extended streaming history)"));
    let bob_plays = counted_plays(&s, &bob).await;
    assert!(bob_plays > 0 && bob_plays < plays, "{bob_plays} of {plays}");
    assert_eq!(counted_plays(&s, &alice).await, plays);
    assert_eq!(s.get("/api/v1/sync-jobs", Some(&bob)).await.body["total"], 1);
    s.stop().await;
}

/// An upload big enough for many progress updates imports without waiting on itself: a
/// progress write awaited beside the import, on SQLite, waited for the import's own
/// transaction until the 30 s busy timeout, again and again (minutes for 128k entries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_upload_records_its_progress_without_stalling() {
    let export = tempfile::tempdir().unwrap();
    let opts = echostats::sample::SampleOptions { zip: true, ..echostats::sample::SampleOptions::with_entries(40_000) };
    let written = echostats::sample::generate_export(export.path(), &opts).unwrap();
    let zip = std::fs::read(&written.files[0]).unwrap();
    let s = start(|_| {}).await;
    let alice = s.login("alice").await;
    let done = import_zip(&s, &alice, "my_spotify_data.zip", &zip).await;
    let at = |field: &str| chrono::DateTime::parse_from_rfc3339(done[field].as_str().unwrap()).unwrap();
    let took = at("completed_at") - at("started_at");
    // Not a speed target: one stall alone is the 30 s busy timeout.
    assert!(took < Age::seconds(30), "the import job took {took} (a stall on the database lock?): {done}");
    assert!(done["items_processed"].as_i64().unwrap() > 40_000, "{done}");
    s.stop().await;
}

/// Uploads `zip` for the session's user and waits for its import job to complete.
async fn import_zip(s: &TestServer, session: &str, name: &str, zip: &[u8]) -> Value {
    let a = s.upload("/api/v1/history/import", Some(session), "file", name, zip).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    let done = s.wait_for_job(a.body["job_id"].as_str().unwrap(), session).await;
    assert_eq!(done["status"], "completed", "{done}");
    done
}

/// Every period's overview of the session's user, without the moment it was computed.
async fn overviews(s: &TestServer, session: &str) -> Vec<Value> {
    let mut all = Vec::new();
    for period in ["week", "month", "quarter", "year", "all_time"] {
        let mut o = s.get(&format!("/api/v1/analytics/overview?period={period}"), Some(session)).await;
        assert_eq!(o.status, StatusCode::OK, "{}", o.body);
        o.body.as_object_mut().unwrap().remove("computed_at");
        all.push(o.body);
    }
    all
}

#[tokio::test]
async fn an_exported_history_downloads_and_imports_into_another_account() {
    let uploads = tempfile::tempdir().unwrap();
    let s = start(|c| c.upload_dir = Some(uploads.path().to_path_buf())).await;
    let alice = s.login("alice").await;
    import_zip(&s, &alice, "my_spotify_data.zip", &zipped_fixture()).await;

    let (status, headers, zip) = s.download("/api/v1/history/export", &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-disposition"], "attachment; filename=\"echostats-history.zip\"");
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip.clone())).unwrap();
    let names: Vec<String> = archive.file_names().map(String::from).collect();
    assert!(!names.is_empty(), "{names:?}");
    for name in &names {
        assert!(name.starts_with("Spotify Extended Streaming History/Streaming_History_Audio_"), "{name}");
        let rows: Vec<Value> = serde_json::from_reader(archive.by_name(name).unwrap()).unwrap();
        assert!(rows.iter().all(|r| r["ts"].is_string() && r.get("ip_addr").is_none()), "{name}");
    }

    // Into another account: the same statistics; back into alice's: nothing added.
    let bob = s.login("bob").await;
    import_zip(&s, &bob, "echostats-history.zip", &zip).await;
    assert_eq!(overviews(&s, &bob).await, overviews(&s, &alice).await);
    assert!(counted_plays(&s, &bob).await > 1_000);
    let again = import_zip(&s, &alice, "echostats-history.zip", &zip).await;
    for st in again["steps"].as_array().unwrap() {
        assert!(st["detail"].as_str().unwrap().contains(" 0 plays added"), "{again}");
    }

    // CSV of a window: a header and one row per stored entry in it.
    let (status, headers, csv) =
        s.download("/api/v1/history/export?format=csv&start_date=2025-01-01&end_date=2025-06-30", &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-disposition"], "attachment; filename=\"echostats-history.csv\"");
    let csv = String::from_utf8(csv).unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("played_at,ms_played,kind,origin,"));
    let days: Vec<&str> = lines.map(|l| &l[..10]).collect();
    assert!(days.iter().all(|d| ("2025-01-01"..="2025-06-30").contains(d)), "{days:?}");
    let start = chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z").unwrap().to_utc();
    let window = echostats::store::TimeWindow { start, end: start + Age::days(181) };
    assert_eq!(days.len(), s.store.plays_in("alice", Some(window)).await.unwrap().len());
    assert!(!days.is_empty());

    for (query, param) in [("format=xml", "format"), ("start_date=2025-02-01&end_date=2025-01-01", "end_date")] {
        let a = s.get(&format!("/api/v1/history/export?{query}"), Some(&alice)).await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {}", a.body);
        assert_eq!(a.body["detail"][0]["loc"], json!(["query", param]), "{query}");
    }
    // A user with no plays gets an empty archive.
    let carol = s.login("carol").await;
    let (status, _, empty) = s.download("/api/v1/history/export", &carol).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(zip::ZipArchive::new(std::io::Cursor::new(empty)).unwrap().len(), 0);

    assert_eq!(std::fs::read_dir(uploads.path()).unwrap().count(), 0, "no export or upload left on disk");
    s.stop().await;
}

#[tokio::test]
async fn rollup_builds_are_recorded_as_jobs() {
    let s = start(|_| {}).await;
    let alice = s.login("alice").await;
    echostats::ingest::import_paths(
        &*s.store,
        "alice",
        &[fixture()],
        &echostats::ingest::ImportOptions::default(),
        None,
    )
    .await
    .unwrap();
    let a = s.post("/api/v1/analytics/rollup-build", Some(&alice)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["status"], "started");
    let done = s.wait_for_job(a.body["job_id"].as_str().unwrap(), &alice).await;
    assert_eq!(
        (done["status"].as_str(), done["job_type"].as_str()),
        (Some("completed"), Some("rollup_build")),
        "{done}"
    );
    let days = done["items_processed"].as_i64().unwrap();
    assert!(days > 100, "{done}");
    assert_eq!(done["steps"][0]["action"], "rebuild_rollups");
    assert_eq!(done["steps"][0]["items"].as_i64(), Some(days));

    s.store.create_job(&job("alice", "r-running", JobType::RollupBuild, JobStatus::Running, 0), true).await.unwrap();
    let a = s.post("/api/v1/analytics/rollup-build", Some(&alice)).await;
    assert_eq!(a.body, json!({"status": "already_running", "job_id": "r-running"}));
    s.stop().await;
}

#[tokio::test]
async fn bad_uploads_are_refused_or_fail_their_job() {
    let uploads = tempfile::tempdir().unwrap();
    let s = start(|c| {
        c.max_upload_bytes = 64 * 1024;
        c.upload_dir = Some(uploads.path().to_path_buf());
    })
    .await;
    let alice = s.login("alice").await;
    let t = Some(alice.as_str());
    let import = "/api/v1/history/import";
    let staged = || std::fs::read_dir(uploads.path()).unwrap().count();

    // Over the limit: 413 while uploading.
    let big = std::fs::read(fixture().join("Spotify Extended Streaming History/endsong_1.json")).unwrap().repeat(8);
    let a = s.upload(import, t, "file", "endsong_1.json", &big).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.body);
    assert!(a.body["detail"].as_str().unwrap().contains("65536 bytes"), "{}", a.body);

    // Neither zip nor JSON: 422 at once.
    let a = s.upload(import, t, "file", "ReadMe.pdf", b"%PDF-1.4 not an export").await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert_eq!(a.body["detail"][0]["loc"], json!(["body", "file"]));
    assert!(a.body["detail"][0]["msg"].as_str().unwrap().contains("neither a zip nor JSON"), "{}", a.body);
    let a = s.upload(import, t, "file", "empty.json", b"").await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    // No `file` field.
    let a = s.upload(import, t, "upload", "endsong_0.json", b"[]").await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert_eq!(a.body["detail"][0]["loc"], json!(["body", "file"]));
    // Not multipart at all.
    let a = s.call(Method::POST, import, t, &[("content-type", "application/json")]).await;
    assert!(a.status.is_client_error(), "{}: {}", a.status, a.body);
    assert_eq!(s.get("/api/v1/sync-jobs", t).await.body["total"], 0, "refused uploads leave no job");
    assert_eq!(staged(), 0, "nor a file");

    // Looks like JSON but breaks at entry 1: the job fails naming file and entry.
    let broken = br#"[{"ts": "2024-01-01T10:00:00Z", "ms_played": 200000, "master_metadata_track_name": "A",
        "master_metadata_album_artist_name": "B", "spotify_track_uri": "spotify:track:x"},
        {"ts": "not a time", "ms_played": 1000}]"#;
    let a = s.upload(import, t, "file", "endsong_9.json", broken).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    let done = s.wait_for_job(a.body["job_id"].as_str().unwrap(), &alice).await;
    assert_eq!(done["status"], "failed", "{done}");
    let message = done["error_message"].as_str().unwrap();
    assert!(message.contains("endsong_9.json") && message.contains("entry 1"), "{message}");
    assert!(!message.contains("echostats-upload-"), "no temporary paths: {message}");
    assert_eq!(done["steps"][0]["status"], "failed");
    assert_eq!(counted_plays(&s, &alice).await, 0, "nothing of a failed file is stored");

    // A file that starts like a zip but is not one.
    let a = s.upload(import, t, "file", "my_spotify_data.zip", b"PK\x03\x04 truncated").await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    let done = s.wait_for_job(a.body["job_id"].as_str().unwrap(), &alice).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(done["error_message"].as_str().unwrap().contains("my_spotify_data.zip"), "{done}");
    assert_eq!(staged(), 0, "uploads are deleted when their job ends");
    s.stop().await;
}

#[tokio::test]
async fn one_import_at_a_time_per_user() {
    let s = start(|_| {}).await;
    let alice = s.login("alice").await;
    s.store.create_job(&job("alice", "i-running", JobType::Import, JobStatus::Running, 0), true).await.unwrap();
    let a = s.upload("/api/v1/history/import", Some(&alice), "file", "endsong_0.json", b"[]").await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    assert_eq!(a.body, json!({"detail": "an import is already running"}));
    let bob = s.login("bob").await;
    let a = s.upload("/api/v1/history/import", Some(&bob), "file", "endsong_0.json", b"[]").await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "another user may import: {}", a.body);
    s.stop().await;
}

#[tokio::test]
async fn a_restart_fails_the_jobs_left_unfinished() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    store.create_job(&job("alice", "left-running", JobType::Import, JobStatus::Running, 5), true).await.unwrap();
    store.create_job(&job("alice", "left-pending", JobType::Periodic, JobStatus::Pending, 4), true).await.unwrap();
    store.create_job(&job("alice", "done", JobType::Periodic, JobStatus::Completed, 6), false).await.unwrap();
    let s = start_on(store, dir, |_| {}).await;
    let alice = s.login("alice").await;
    let a = s.get("/api/v1/sync-jobs", Some(&alice)).await;
    let by_id = |id: &str| a.body["items"].as_array().unwrap().iter().find(|j| j["id"] == id).cloned().unwrap();
    for id in ["left-running", "left-pending"] {
        let j: Value = by_id(id);
        assert_eq!(j["status"], "failed", "{j}");
        assert_eq!(j["error_message"], "interrupted: the server restarted");
    }
    assert_eq!(by_id("done")["status"], "completed");
    // Their exclusivity is released: a new import may start.
    let a = s.upload("/api/v1/history/import", Some(&alice), "file", "endsong_0.json", b"[]").await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    s.stop().await;
}

#[tokio::test]
async fn old_jobs_and_logs_are_deleted_after_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(dir.path()).await;
    store.create_job(&job("alice", "old", JobType::Periodic, JobStatus::Completed, 3 * 24 * 60), false).await.unwrap();
    store.create_job(&job("alice", "new", JobType::Periodic, JobStatus::Completed, 1), false).await.unwrap();
    store
        .log_api_calls(&[
            call("alice", 0, "GET", "/v1/me", 200, 3 * 24 * 3600),
            call("alice", 1, "GET", "/v1/me", 200, 1),
        ])
        .await
        .unwrap();
    // The sweep runs when the server starts, then hourly.
    let s = start_on(store, dir, |c| c.retention = std::time::Duration::from_secs(24 * 3600)).await;
    let alice = s.login("alice").await;
    let mut left = (0, 0);
    for _ in 0..50 {
        left = (
            s.get("/api/v1/sync-jobs", Some(&alice)).await.body["total"].as_u64().unwrap(),
            s.get("/api/v1/api-logs", Some(&alice)).await.body["total"].as_u64().unwrap(),
        );
        if left == (1, 1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(left, (1, 1), "only the recent job and call are kept");
    s.stop().await;
}
