//! `echostats serve` as a user runs it: the demo on a free port (imports the sample export,
//! dev-login on, random secret) up to its graceful stop on SIGTERM, and the refusal to
//! start without a JWT secret.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn serve(db: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_echostats"));
    cmd.arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .arg("serve")
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .env_remove("JWT_SECRET")
        .env_remove("ECHOSTATS_DATABASE_URL")
        .env_remove("ECHOSTATS_DEMO")
        .env_remove("ECHOSTATS_DEV_LOGIN");
    cmd
}

/// Kills the server when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serve_demo_imports_the_sample_signs_in_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Running(serve(&dir.path().join("demo.db"), &["--demo"]).stdout(Stdio::piped()).spawn().unwrap());
    // Read stdout until the server says where it listens (the import comes first).
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut lines = Vec::new();
    let base = loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).unwrap_or_else(|_| {
            panic!("no listening line within 120 s; output so far: {lines:?}");
        });
        if let Some(rest) = line.strip_prefix("echostats API on ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
        lines.push(line);
    };
    assert!(lines.iter().any(|l| l.starts_with("demo: imported")), "{lines:?}");

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let login: serde_json::Value =
        http.post(format!("{base}/api/v1/auth/dev-login")).send().await.unwrap().json().await.unwrap();
    assert_eq!(login["user"]["id"], "demo", "{login}");
    let token = login["token"].as_str().unwrap();
    let get = |url: &str| {
        let request = http.get(url).bearer_auth(token);
        async move { request.send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    let overview = get(&format!("{base}/api/v1/analytics/overview")).await;
    assert!(overview["total_tracks_played"].as_i64().unwrap() > 1_000, "{overview}");
    // The demo's history reaches today whenever it is started, so the rolling periods
    // have data: its newest play is at most the generator's longest break from
    // listening (9 days) and a day or two of chance ago.
    let newest = get(&format!("{base}/api/v1/history?limit=1")).await;
    let played_at = chrono::DateTime::parse_from_rfc3339(newest["items"][0]["played_at"].as_str().unwrap()).unwrap();
    let age = chrono::Utc::now().signed_duration_since(played_at);
    assert!(age >= chrono::Duration::zero() && age < chrono::Duration::days(12), "newest play {played_at}");

    // SIGTERM (docker stop, systemd) stops it gracefully: exit 0, the database closed
    // with its log merged.
    #[cfg(unix)]
    {
        let killed = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "still running 30 s after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "after SIGTERM: {status:?}");
        let wal = dir.path().join("demo.db-wal");
        assert!(std::fs::metadata(&wal).map_or(true, |m| m.len() == 0), "the log was left behind");
    }
}

#[test]
fn serve_refuses_to_start_without_a_jwt_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = serve(&dir.path().join("x.db"), &[]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("JWT_SECRET"), "{err}");

    let out = serve(&dir.path().join("x.db"), &["--jwt-secret", "short"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 32"), "{}", String::from_utf8_lossy(&out.stderr));
}
