//! The `echostats` binary end to end on a real SQLite file: import the sample export,
//! import it again (nothing added), report as JSON and text, and bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn echostats(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_echostats"))
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .args(args)
        .env("ECHOSTATS_QUIET", "1")
        .env_remove("ECHOSTATS_DATABASE_URL")
        .output()
        .expect("run echostats")
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sample_export")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn import_twice_then_report() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested/dir/echostats.db");
    let first = echostats(&db, &["import", fixture().to_str().unwrap()]);
    assert!(first.status.success(), "{}{}", stdout(&first), String::from_utf8_lossy(&first.stderr));
    let out = stdout(&first);
    assert!(
        out.contains("skipped") && out.contains("Streaming_History_Video"),
        "video file reported as skipped:\n{out}"
    );
    assert!(out.contains("Rejected:"), "{out}");
    assert!(db.exists(), "the SQLite file is created on first use");

    let second = echostats(&db, &["import", fixture().to_str().unwrap()]);
    assert!(second.status.success());
    assert!(stdout(&second).contains("Stored: 0 added, 0 enriched"), "{}", stdout(&second));

    let json = echostats(&db, &["report", "--period", "all_time", "--format", "json", "--tz", "Europe/Berlin"]);
    assert!(json.status.success(), "{}", String::from_utf8_lossy(&json.stderr));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("report JSON");
    assert_eq!(v["period"], "all_time");
    assert!(v["total_tracks_played"].as_i64().unwrap() > 1_000);
    assert_eq!(v["hourly_distribution"].as_array().unwrap().len(), 24);
    assert_eq!(v["daily_distribution"].as_array().unwrap().len(), 7);
    assert_eq!(v["top_artists"][0]["rank"], 1);
    assert!(v["avg_audio_features"].is_null());

    let text = echostats(&db, &["report", "--period", "year"]);
    assert!(text.status.success());
    let t = stdout(&text);
    assert!(t.contains("Top artists") && t.contains("Plays by hour of day") && t.contains("█"), "{t}");
}

#[test]
fn bad_input_is_reported_and_nothing_of_it_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("e.db");
    let bad = dir.path().join("endsong_0.json");
    std::fs::write(
        &bad,
        r#"[{"ts":"2020-01-01T10:00:00Z","ms_played":200000,"spotify_track_uri":"spotify:track:a","master_metadata_track_name":"A","master_metadata_album_artist_name":"B"},
            {"ts":"2020-01-01T10:05:00Z","ms_played":"long"}]"#,
    )
    .unwrap();
    let o = echostats(&db, &["import", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "a failed file makes the exit code 2");
    let out = stdout(&o);
    assert!(out.contains("FAILED") && out.contains("endsong_0.json") && out.contains("entry 1"), "{out}");
    let json = echostats(&db, &["report", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["total_tracks_played"], 0, "nothing of the failed file was stored");
}

#[test]
fn unknown_period_and_zone_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("e.db");
    let o = echostats(&db, &["report", "--period", "decade"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected one of week, month, quarter, year, all_time"));
    let o = echostats(&db, &["report", "--tz", "Mars/Olympus"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("IANA"));
    let o = echostats(&db, &["import", "/does/not/exist.zip"]);
    assert!(!o.status.success());
}
