//! The `echostats` binary end to end on a real SQLite file: import the sample export,
//! import it again (nothing added), report as JSON and text, bad input, and export (as
//! extended history into a fresh store with the same reports, and as CSV). And the same
//! import and report against MongoDB at `ECHOSTATS_TEST_MONGO_URL` (read at run time;
//! skipped when unset unless `ECHOSTATS_REQUIRE_SERVICES` is set), with the figures of
//! SQLite.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn echostats(db: &Path, args: &[&str]) -> Output {
    echostats_at(&format!("sqlite://{}", db.display()), args)
}

fn echostats_at(database_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_echostats"))
        .arg("--database-url")
        .arg(database_url)
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
    let o = echostats(&db, &["--log", "warn,[unclosed", "report"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a level or tracing filter"), "{o:?}");
}

#[test]
fn log_option_sets_what_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("e.db");
    let quiet = echostats(&db, &["report", "--format", "json"]);
    assert!(quiet.status.success());
    assert!(quiet.stderr.is_empty(), "warnings only by default: {}", String::from_utf8_lossy(&quiet.stderr));
    // The option and its variable say the same; sqlx logs each statement at debug.
    let flag = echostats(&db, &["--log", "debug", "report", "--format", "json"]);
    let mut env = Command::new(env!("CARGO_BIN_EXE_echostats"));
    env.arg("--database-url").arg(format!("sqlite://{}", db.display())).args(["report", "--format", "json"]);
    let env = env.env("ECHOSTATS_LOG", "debug").env_remove("ECHOSTATS_DATABASE_URL").output().unwrap();
    for o in [&flag, &env] {
        assert!(o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains("DEBUG"), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

/// A MongoDB database of its own for one test, dropped when the test ends (passed or not).
struct MongoDatabase {
    /// The base URL with the database name in its path.
    url: String,
    name: String,
}

impl MongoDatabase {
    /// `base` (`mongodb://host:port[/db][?options]`) with a fresh database name in its path.
    fn fresh(base: &str) -> MongoDatabase {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("echostats_cli_{}_{nanos}", std::process::id());
        let (head, query) = base.split_once('?').map_or((base, None), |(h, q)| (h, Some(q)));
        let hosts_start = head.find("://").map_or(0, |i| i + 3);
        let hosts_end = head[hosts_start..].find('/').map_or(head.len(), |i| hosts_start + i);
        let url = match query {
            Some(q) => format!("{}/{name}?{q}", &head[..hosts_end]),
            None => format!("{}/{name}", &head[..hosts_end]),
        };
        MongoDatabase { url, name }
    }
}

impl Drop for MongoDatabase {
    fn drop(&mut self) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let dropped = rt.block_on(async {
            let client = mongodb::Client::with_uri_str(&self.url).await?;
            client.database(&self.name).drop().await?;
            client.shutdown().await;
            Ok::<(), mongodb::error::Error>(())
        });
        if let Err(e) = dropped {
            eprintln!("could not drop the test database {}: {e}", self.name);
        }
    }
}

/// The import summary without its timing line.
fn summary_without_time(o: &Output) -> String {
    stdout(o).lines().filter(|l| !l.starts_with("Time:")).collect::<Vec<_>>().join("\n")
}

/// The JSON report without the moment it was computed.
fn report_json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("report JSON");
    v.as_object_mut().expect("a JSON object").remove("computed_at");
    v
}

#[test]
fn mongodb_import_and_report_equal_sqlite() {
    let Some(base) = echostats_core::conformance::service_url("ECHOSTATS_TEST_MONGO_URL") else {
        return;
    };
    let mongo = MongoDatabase::fresh(&base);
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("e.db").display());
    let fixture = fixture();
    let fixture = fixture.to_str().unwrap();

    let mut imported = Vec::new();
    for url in [&sqlite, &mongo.url] {
        let o = echostats_at(url, &["import", fixture]);
        assert!(o.status.success(), "import into {url}:\n{}{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
        imported.push(summary_without_time(&o));
    }
    assert_eq!(imported[0], imported[1], "the same import summary from SQLite and MongoDB");
    assert!(imported[1].contains("Rejected:"), "{}", imported[1]);

    let report = ["report", "--period", "all_time", "--format", "json", "--tz", "Europe/Berlin"];
    let (from_sqlite, from_mongo) =
        (report_json(&echostats_at(&sqlite, &report)), report_json(&echostats_at(&mongo.url, &report)));
    assert!(from_mongo["total_tracks_played"].as_i64().unwrap() > 1_000, "{from_mongo}");
    assert_eq!(from_sqlite, from_mongo, "the same all-time report from SQLite and MongoDB");

    let again = echostats_at(&mongo.url, &["import", fixture]);
    assert!(again.status.success());
    assert!(stdout(&again).contains("Stored: 0 added, 0 enriched"), "{}", stdout(&again));
}

#[test]
fn exported_history_imports_into_a_fresh_store_with_the_same_reports() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    let imported = echostats(&a, &["import", fixture().to_str().unwrap()]);
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));

    let out = dir.path().join("backup");
    let exported = echostats(&a, &["export", out.to_str().unwrap()]);
    assert!(exported.status.success(), "{}", String::from_utf8_lossy(&exported.stderr));
    let said = String::from_utf8_lossy(&exported.stderr).into_owned();
    assert!(said.starts_with("Exported ") && said.contains(" plays into "), "{said}");
    let files: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!files.is_empty() && files.iter().all(|f| f.starts_with("Streaming_History_Audio_")), "{files:?}");

    let into_b = echostats(&b, &["import", out.to_str().unwrap()]);
    assert!(into_b.status.success(), "{}", stdout(&into_b));
    assert!(stdout(&into_b).contains("0 failed"), "{}", stdout(&into_b));
    for period in ["week", "month", "quarter", "year", "all_time"] {
        let report = ["report", "--period", period, "--format", "json", "--tz", "Europe/Berlin"];
        assert_eq!(report_json(&echostats(&a, &report)), report_json(&echostats(&b, &report)), "{period}");
    }
    let back_into_a = echostats(&a, &["import", out.to_str().unwrap()]);
    assert!(stdout(&back_into_a).contains("Stored: 0 added, 0 enriched"), "{}", stdout(&back_into_a));

    // Into a folder that holds an export already: refused, nothing touched.
    let again = echostats(&b, &["export", out.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("export into an empty folder"));

    // CSV on standard output: a header and one row per stored entry; a window.
    let csv = echostats(&a, &["export", "--format", "csv", "-"]);
    assert!(csv.status.success(), "{}", String::from_utf8_lossy(&csv.stderr));
    let text = stdout(&csv);
    assert!(text.starts_with("played_at,ms_played,kind,origin,uri,"), "{}", &text[..200.min(text.len())]);
    let rows = text.lines().count() - 1;
    let entries = stdout(&imported)
        .lines()
        .find_map(|l| l.strip_prefix("Stored: ")?.split(' ').next()?.parse::<usize>().ok())
        .unwrap();
    assert_eq!(rows, entries, "one row per stored entry");
    let year = text.lines().nth(1).unwrap()[..4].to_string();
    let one_year = echostats(
        &a,
        &["export", "--format", "csv", "--start", &format!("{year}-01-01"), "--end", &format!("{year}-12-31"), "-"],
    );
    let in_year = stdout(&one_year).lines().skip(1).filter(|l| l.starts_with(&year)).count();
    assert!(in_year > 0 && in_year == stdout(&one_year).lines().count() - 1 && in_year < rows, "{in_year} of {rows}");

    let backwards = echostats(&a, &["export", "--format", "csv", "--start", "2024-02-01", "--end", "2024-01-31", "-"]);
    assert!(!backwards.status.success());
    assert!(String::from_utf8_lossy(&backwards.stderr).contains("--start (2024-02-01) is after --end (2024-01-31)"));
}
