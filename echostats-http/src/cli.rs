//! Command-line options (every option is also an environment variable) and commands.

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use echostats::analytics::{self, OverviewRequest, Period};
use echostats::ingest::{self, FileStatus, ImportOptions, ImportSummary};
use echostats::store::{Store, TimeWindow};
use echostats::PlayRules;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Self-hosted Spotify listening statistics.
#[derive(Parser, Debug)]
#[command(name = "echostats", version, about)]
pub struct Cli {
    /// Where data lives: sqlite://FILE (default: a file in your data directory), postgres://..., mongodb://HOST/DB, memory://
    #[arg(long, global = true, env = "ECHOSTATS_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Whose data (one store can hold several people).
    #[arg(long, global = true, env = "ECHOSTATS_USER", default_value = "local")]
    pub user: String,
    /// What to log on stderr: a level (error, warn, info, debug, trace) or a tracing
    /// filter such as `warn,echostats_store_sql=debug` (default: warnings; `serve` also
    /// logs each request)
    #[arg(long, global = true, env = "ECHOSTATS_LOG", value_parser = parse_log_filter)]
    pub log: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per run: boxing the large `serve` arguments would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Import a Spotify export: my_spotify_data.zip, a folder, or .json files.
    Import(ImportArgs),
    /// Print the statistics of a period.
    Report(ReportArgs),
    /// Write the stored history out: as Spotify's extended streaming history (a backup that
    /// `import` reads back, into any store) or as CSV.
    Export(ExportArgs),
    /// Write a synthetic Spotify export (for demos and benchmarks).
    GenerateSample(SampleArgs),
    /// Serve the EchoStats REST API (and its docs at /api/docs).
    Serve(ServeArgs),
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Files, folders or zips.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// A music entry counts as a play from this many milliseconds.
    #[arg(long, env = "ECHOSTATS_MIN_PLAY_MS", default_value_t = 30_000)]
    pub min_play_ms: i64,
    /// Entries of the same item ending within this many seconds are one play.
    #[arg(long, env = "ECHOSTATS_DUPLICATE_WINDOW_SECS", default_value_t = 60)]
    pub duplicate_window_secs: i64,
    /// No progress bar.
    #[arg(long, env = "ECHOSTATS_QUIET", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub quiet: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// week, month, quarter, year or all_time.
    #[arg(long, env = "ECHOSTATS_PERIOD", default_value = "all_time", value_parser = parse_period)]
    pub period: Period,
    /// IANA time zone for hours, weekdays and days.
    #[arg(long, env = "ECHOSTATS_TZ", default_value = "UTC", value_parser = parse_tz)]
    pub tz: chrono_tz::Tz,
    /// Output format.
    #[arg(long, env = "ECHOSTATS_FORMAT", value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Length of the top lists.
    #[arg(long, env = "ECHOSTATS_TOP", default_value_t = 10)]
    pub top: usize,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Streaming_History_Audio_*.json files into the folder OUT.
    Extended,
    /// One CSV file OUT (`-`: standard output), one row per play with every stored field.
    Csv,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A folder (extended; created if missing, must hold no streaming history yet) or a
    /// file (csv; `-` for standard output).
    pub out: PathBuf,
    /// What to write.
    #[arg(long, env = "ECHOSTATS_EXPORT_FORMAT", value_enum, default_value_t = ExportFormat::Extended)]
    pub format: ExportFormat,
    /// First day (YYYY-MM-DD, UTC) to export; default: the first play.
    #[arg(long, env = "ECHOSTATS_EXPORT_START")]
    pub start: Option<chrono::NaiveDate>,
    /// Last day (YYYY-MM-DD, UTC, included) to export; default: the last play.
    #[arg(long, env = "ECHOSTATS_EXPORT_END")]
    pub end: Option<chrono::NaiveDate>,
}

impl ExportArgs {
    /// The plays' time window: from the start of `start` to the end of `end`, UTC.
    fn window(&self) -> anyhow::Result<Option<TimeWindow>> {
        let midnight = |d: chrono::NaiveDate| d.and_time(chrono::NaiveTime::MIN).and_utc();
        let start = self.start.map(midnight);
        let end = self.end.map(|d| d.succ_opt().context("--end is the last day there is")).transpose()?.map(midnight);
        // `end` is the midnight after the last day: empty exactly when `--start` is after `--end`.
        TimeWindow::open_ended(start, end).map_err(|w| {
            let (first, last) = (w.start.date_naive(), w.end.date_naive().pred_opt().unwrap_or(chrono::NaiveDate::MIN));
            anyhow::anyhow!("--start ({first}) is after --end ({last})")
        })
    }
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Output folder.
    #[arg(long, env = "ECHOSTATS_SAMPLE_OUT")]
    pub out: PathBuf,
    /// Extended-history entries.
    #[arg(long, env = "ECHOSTATS_SAMPLE_ENTRIES", default_value_t = 6_000)]
    pub entries: usize,
    /// Years covered.
    #[arg(long, env = "ECHOSTATS_SAMPLE_YEARS", default_value_t = 4)]
    pub years: u32,
    /// Random seed.
    #[arg(long, env = "ECHOSTATS_SAMPLE_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Write my_spotify_data.zip instead of folders.
    #[arg(long, env = "ECHOSTATS_SAMPLE_ZIP", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub zip: bool,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "ECHOSTATS_BIND", default_value = "127.0.0.1:8000")]
    pub bind: String,
    /// Key that signs session tokens (at least 32 characters). Required unless --demo.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// How long a session lasts, in hours.
    #[arg(long, env = "ECHOSTATS_SESSION_TTL_HOURS", default_value_t = 168)]
    pub session_ttl_hours: u64,
    /// Enable /api/v1/auth/dev-login (sign in as any user without Spotify): development only.
    #[arg(long, env = "ECHOSTATS_DEV_LOGIN", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub dev_login: bool,
    /// Requests without a session act as the only user when exactly one exists.
    #[arg(long, env = "ECHOSTATS_SINGLE_USER_AUTO_LOGIN", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub single_user_auto_login: bool,
    /// Demo mode: import the sample export for user "demo" if it has no history, enable
    /// dev-login, and use a random JWT secret when none is given.
    #[arg(long, env = "ECHOSTATS_DEMO", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub demo: bool,
    /// The export the demo imports (default: the sample export, generated with its
    /// history ending now).
    #[arg(long, env = "ECHOSTATS_DEMO_EXPORT")]
    pub demo_export: Option<PathBuf>,
    /// Requests per client IP per window; 0 turns rate limiting off.
    #[arg(long, env = "ECHOSTATS_RATE_LIMIT", default_value_t = 100)]
    pub rate_limit: u32,
    /// The rate-limit window in seconds.
    #[arg(long, env = "ECHOSTATS_RATE_LIMIT_WINDOW_SECS", default_value_t = 60)]
    pub rate_limit_window_secs: u64,
    /// Take the client IP from X-Forwarded-For (only behind a reverse proxy that sets it).
    #[arg(long, env = "ECHOSTATS_TRUST_PROXY", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub trust_proxy: bool,
    /// Time limit of a request in seconds.
    #[arg(long, env = "ECHOSTATS_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Time limit of slow requests (rollup build, import, export) in seconds.
    #[arg(long, env = "ECHOSTATS_SLOW_REQUEST_TIMEOUT_SECS", default_value_t = 120)]
    pub slow_request_timeout_secs: u64,
    /// Origins allowed to call the API from a browser (comma-separated; empty for none).
    #[arg(long, env = "ECHOSTATS_CORS_ORIGINS", value_delimiter = ',', default_value = "http://localhost:3000")]
    pub cors_origins: Vec<String>,
    /// A music entry counts as a play from this many milliseconds (demo import, rollup rebuilds).
    #[arg(long, env = "ECHOSTATS_MIN_PLAY_MS", default_value_t = 30_000)]
    pub min_play_ms: i64,
    /// Entries of the same item ending within this many seconds are one play.
    #[arg(long, env = "ECHOSTATS_DUPLICATE_WINDOW_SECS", default_value_t = 60)]
    pub duplicate_window_secs: i64,
    /// Days that finished sync/import jobs and Spotify API call logs are kept.
    #[arg(long, env = "ECHOSTATS_RETENTION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub retention_days: u64,
    /// Seconds a computed overview is served again; imports and rebuilds through this
    /// server invalidate it at once (0: compute every time).
    #[arg(long, env = "ECHOSTATS_OVERVIEW_CACHE_SECS", default_value_t = 60)]
    pub overview_cache_secs: u64,
    /// Largest history upload (POST /api/v1/history/import) in bytes.
    #[arg(long, env = "ECHOSTATS_MAX_UPLOAD_BYTES", default_value_t = 1 << 30)]
    pub max_upload_bytes: u64,
    /// Where uploads are kept while they are imported (default: the system's temporary directory).
    #[arg(long, env = "ECHOSTATS_UPLOAD_DIR")]
    pub upload_dir: Option<PathBuf>,
    /// Spotify app client id (Spotify sign-in and the Spotify-backed routes need it).
    #[arg(long, env = "SPOTIFY_CLIENT_ID")]
    pub spotify_client_id: Option<String>,
    /// Spotify app client secret.
    #[arg(long, env = "SPOTIFY_CLIENT_SECRET", hide_env_values = true)]
    pub spotify_client_secret: Option<String>,
    /// The redirect URI registered for the Spotify app (HTTPS, or loopback http://127.0.0.1:PORT).
    #[arg(long, env = "SPOTIFY_REDIRECT_URI", default_value = "http://127.0.0.1:8000/api/v1/auth/callback")]
    pub spotify_redirect_uri: String,
    /// The Spotify accounts service (change only for testing).
    #[arg(long, env = "SPOTIFY_ACCOUNTS_URL", default_value = "https://accounts.spotify.com")]
    pub spotify_accounts_url: String,
    /// The Spotify Web API (change only for testing).
    #[arg(long, env = "SPOTIFY_API_URL", default_value = "https://api.spotify.com")]
    pub spotify_api_url: String,
    /// Key sealing the stored Spotify tokens (AES-256-GCM): 32 bytes as base64 or hex.
    /// Required with Spotify; --demo makes a random one.
    #[arg(long, env = "ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<String>,
    /// Where the browser goes after signing in with Spotify ({frontend_url}/auth/callback?status=success).
    #[arg(long, env = "FRONTEND_URL", default_value = "/")]
    pub frontend_url: String,
    /// Minutes between syncs of every Spotify-connected user's recently played tracks (0: off;
    /// sign-in and POST /api/v1/sync-jobs/trigger still sync).
    #[arg(long, env = "ECHOSTATS_SYNC_INTERVAL_MINUTES", default_value_t = 15)]
    pub sync_interval_minutes: u64,
    /// Redis of the deployment (redis://host:6379/0); /api/health/ready then checks it.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// GitHub "latest release" API URL that /api/health/update checks (hourly, in the
    /// background), e.g. https://api.github.com/repos/OWNER/REPO/releases/latest; unset: no check.
    #[arg(long, env = "ECHOSTATS_RELEASES_URL")]
    pub releases_url: Option<String>,
}

fn parse_period(s: &str) -> Result<Period, String> {
    s.parse().map_err(|e: echostats::Error| e.to_string())
}

/// Checks a log filter here, so that a typo is an error that says what is wrong rather
/// than a silently different log.
fn parse_log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::builder()
        .parse(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("not a level or tracing filter: {e}"))
}

fn parse_tz(s: &str) -> Result<chrono_tz::Tz, String> {
    analytics::parse_tz(s).map_err(|e| e.to_string())
}

/// The default database: `echostats.db` in the user's data directory.
pub fn default_database_url() -> anyhow::Result<String> {
    let dir = dirs::data_dir().context("no data directory on this system: pass --database-url")?.join("echostats");
    Ok(format!("sqlite://{}", dir.join("echostats.db").display()))
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::GenerateSample(args) = &cli.command {
        return generate_sample(args);
    }
    let url = match cli.database_url {
        Some(u) => u,
        None => default_database_url()?,
    };
    if let Command::Export(_) = &cli.command {
        // An export reads every play once: with SQLite on mimalloc (see `sqlite_allocator`)
        // a 984k-play export took 9.5 s instead of 12.1 s, for a few MB more memory.
        echostats::sqlite_allocator::use_mimalloc();
    }
    let store = echostats::open_store(&url).await.with_context(|| format!("opening {url}"))?;
    let outcome = run_command(store.clone(), &cli.user, cli.command).await;
    store.close().await;
    outcome
}

async fn run_command(store: Arc<dyn Store>, cli_user: &str, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve(store, cli_user, args).await,
        Command::Import(args) => import(&*store, cli_user, &args).await,
        Command::Report(args) => {
            let req = OverviewRequest { period: args.period, tz: args.tz, now: None, top_limit: args.top };
            let overview = analytics::overview(&*store, cli_user, &req).await?;
            match args.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&overview)?),
                Format::Text => {
                    let shows = analytics::top_shows(&*store, cli_user, args.period, req.now(), 5).await?;
                    print!("{}", crate::report::render(&overview, &shows));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Export(args) => export(&*store, cli_user, &args).await,
        Command::GenerateSample(_) => unreachable!("handled above"),
    }
}

async fn export(store: &dyn Store, user: &str, args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let window = args.window()?;
    let started = std::time::Instant::now();
    match args.format {
        ExportFormat::Extended => {
            let summary = echostats::export::write_extended_history(store, user, window, &args.out).await?;
            eprintln!(
                "Exported {} plays into {} file{} in {} ({:.1} s)",
                summary.plays,
                summary.files.len(),
                if summary.files.len() == 1 { "" } else { "s" },
                args.out.display(),
                started.elapsed().as_secs_f64()
            );
        }
        ExportFormat::Csv if args.out.as_os_str() == "-" => {
            let stdout = std::io::BufWriter::new(std::io::stdout());
            match echostats::export::write_csv(store, user, window, stdout).await {
                Ok(plays) => eprintln!("Exported {plays} plays ({:.1} s)", started.elapsed().as_secs_f64()),
                // `echostats export --format csv - | head`: the reader has what it wanted.
                Err(echostats::Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => return Err(e.into()),
            }
        }
        ExportFormat::Csv => {
            let file = std::fs::File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
            let written = echostats::export::write_csv(store, user, window, std::io::BufWriter::new(file)).await;
            let plays = match written {
                Ok(plays) => plays,
                Err(e) => {
                    // No half-written file left behind.
                    let _ = std::fs::remove_file(&args.out);
                    return Err(e.into());
                }
            };
            eprintln!("Exported {plays} plays into {} ({:.1} s)", args.out.display(), started.elapsed().as_secs_f64());
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn import(store: &dyn echostats::store::Store, user: &str, args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let opts = ImportOptions {
        rules: PlayRules {
            min_play_ms: args.min_play_ms,
            duplicate_window: chrono::Duration::seconds(args.duplicate_window_secs),
        },
        ..ImportOptions::default()
    };
    let files = echostats::import::count_input_files(&args.paths);
    let bar = if args.quiet { ProgressBar::hidden() } else { ProgressBar::new(files) };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} files  {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let progress = |s: &ImportSummary, file: &str| {
        bar.set_position(s.files.len() as u64);
        bar.set_message(format!(
            "{} entries read, {} added, {} duplicates, {} rejected — {}",
            s.entries(),
            s.outcome.added,
            s.outcome.duplicates,
            s.rejected_total(),
            file.rsplit(['/', '!']).next().unwrap_or(file)
        ));
    };
    let summary = ingest::import_paths(store, user, &args.paths, &opts, Some(&progress)).await?;
    bar.finish_and_clear();
    print!("{}", render_summary(&summary));
    Ok(if summary.failed().count() > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS })
}

fn render_summary(s: &ImportSummary) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let imported = s.files.iter().filter(|f| f.status == FileStatus::Imported).count();
    let skipped = s.files.iter().filter(|f| matches!(f.status, FileStatus::Skipped { .. })).count();
    let failed = s.failed().count();
    let _ = writeln!(out, "Files: {imported} imported, {skipped} skipped, {failed} failed");
    for f in &s.files {
        match &f.status {
            FileStatus::Imported => {
                let _ = writeln!(
                    out,
                    "  ok      {} ({}, {} entries, {} added, {} duplicates)",
                    f.file,
                    f.format.map(|x| x.to_string()).unwrap_or_default(),
                    f.entries,
                    f.outcome.added,
                    f.outcome.duplicates
                );
            }
            FileStatus::Skipped { reason } => {
                let _ = writeln!(out, "  skipped {}: {reason}", f.file);
            }
            FileStatus::Failed { error } => {
                let _ = writeln!(out, "  FAILED  {error} (nothing of this file was stored)");
            }
        }
    }
    let kinds: Vec<String> = s.entries_by_kind.iter().map(|(k, n)| format!("{n} {}", k.as_str())).collect();
    match kinds.is_empty() {
        true => writeln!(out, "Entries: 0"),
        false => writeln!(out, "Entries: {} ({})", s.entries(), kinds.join(", ")),
    }
    .ok();
    let _ = writeln!(
        out,
        "Stored: {} added, {} enriched (richer record replaced a poorer one), {} duplicates ignored",
        s.outcome.added, s.outcome.replaced, s.outcome.duplicates
    );
    let rejected = s.rejected_total();
    let _ = writeln!(out, "Rejected: {rejected}");
    for (reason, n) in &s.rejected {
        let _ = writeln!(out, "  {n} × {reason}");
    }
    let _ = writeln!(out, "Time: {:.2} s", s.elapsed.as_secs_f64());
    out
}

async fn serve(store: Arc<dyn Store>, user: &str, args: ServeArgs) -> anyhow::Result<ExitCode> {
    use echostats_http::{demo, RateLimit, ServerConfig};
    let rules = PlayRules {
        min_play_ms: args.min_play_ms,
        duplicate_window: chrono::Duration::seconds(args.duplicate_window_secs),
    };
    let secret = match (args.jwt_secret, args.demo) {
        (Some(s), _) => s.into_bytes(),
        (None, true) => {
            use rand::RngCore;
            let mut key = vec![0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            tracing::warn!("demo: random JWT secret, sessions end when the server stops");
            key
        }
        (None, false) => anyhow::bail!(
            "no JWT secret: set JWT_SECRET (or --jwt-secret) to at least 32 random characters, \
             e.g. `export JWT_SECRET=$(openssl rand -hex 32)`, or run with --demo"
        ),
    };
    let mut config = ServerConfig::new(secret);
    config.bind = args.bind;
    config.session_ttl = Duration::from_secs(args.session_ttl_hours.saturating_mul(3600));
    config.dev_login = args.dev_login || args.demo;
    config.dev_login_user = if args.demo { demo::DEMO_USER.to_string() } else { user.to_string() };
    config.single_user_auto_login = args.single_user_auto_login;
    config.rate_limit = (args.rate_limit > 0)
        .then(|| RateLimit { requests: args.rate_limit, window: Duration::from_secs(args.rate_limit_window_secs) });
    config.trust_proxy = args.trust_proxy;
    config.request_timeout = Duration::from_secs(args.request_timeout_secs);
    config.slow_request_timeout = Duration::from_secs(args.slow_request_timeout_secs);
    config.cors_origins =
        args.cors_origins.into_iter().map(|o| o.trim().to_string()).filter(|o| !o.is_empty()).collect();
    config.rules = rules.clone();
    config.retention = Duration::from_secs(args.retention_days.saturating_mul(24 * 3600));
    config.overview_max_age = Duration::from_secs(args.overview_cache_secs);
    config.max_upload_bytes = args.max_upload_bytes;
    config.upload_dir = args.upload_dir;
    config.encryption_key = match (args.encryption_key.as_deref(), args.demo) {
        (Some(k), _) => Some(echostats_http::TokenKey::parse(k).map_err(|e| anyhow::anyhow!(e))?),
        (None, true) => {
            tracing::warn!("demo: random ENCRYPTION_KEY, stored Spotify tokens cannot be read after a restart");
            Some(echostats_http::TokenKey::random())
        }
        (None, false) => None,
    };
    config.spotify = match (args.spotify_client_id, args.spotify_client_secret) {
        (Some(id), Some(secret)) => {
            let mut spotify = echostats_http::SpotifyConfig::new(id, secret);
            spotify.redirect_uri = args.spotify_redirect_uri;
            spotify.accounts_url = args.spotify_accounts_url;
            spotify.api_url = args.spotify_api_url;
            Some(spotify)
        }
        (None, None) => None,
        _ => anyhow::bail!(
            "Spotify needs both SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET (--spotify-client-id/-secret)"
        ),
    };
    config.frontend_url = args.frontend_url;
    config.sync_interval =
        (args.sync_interval_minutes > 0).then(|| Duration::from_secs(args.sync_interval_minutes.saturating_mul(60)));
    config.redis_url = args.redis_url.filter(|u| !u.trim().is_empty());
    config.releases_url = args.releases_url.filter(|u| !u.trim().is_empty());
    if args.demo {
        // The generated export lives in a temporary directory until it is imported.
        let (export, what, _generated) = match args.demo_export {
            Some(path) => (path.clone(), path.display().to_string(), None),
            None => {
                let dir = tempfile::tempdir().context("creating a directory for the demo export")?;
                let now = chrono::Utc::now();
                demo::write_sample_export(dir.path(), now).context("writing the demo export")?;
                let what = format!("the sample export (history up to {})", now.format("%Y-%m-%d"));
                (dir.path().to_path_buf(), what, Some(dir))
            }
        };
        match demo::import_if_empty(&*store, demo::DEMO_USER, &export, &rules)
            .await
            .with_context(|| format!("importing the demo export {}", export.display()))?
        {
            Some(s) => println!(
                "demo: imported {what} ({} entries, {} plays added) for user \"{}\"",
                s.entries(),
                s.outcome.added,
                demo::DEMO_USER
            ),
            None => println!("demo: user \"{}\" has history already; nothing imported", demo::DEMO_USER),
        }
    }
    let dev_login = config.dev_login;
    let server = echostats_http::Server::bind(config, store).await?;
    let addr = server.local_addr();
    println!("echostats API on http://{addr} (docs: http://{addr}/api/docs)");
    if dev_login {
        println!("dev-login enabled: POST http://{addr}/api/v1/auth/dev-login signs in without Spotify");
    }
    server.run_until(shutdown_signal()).await?;
    tracing::info!("stopped: open requests finished, closing the database");
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C, or SIGTERM (what `docker stop`, systemd and `kill` send): either stops the
/// server gracefully, and the store is then closed (a SQLite file checkpointed). Without
/// SIGTERM handled, a stopped container cut open requests and left the log unmerged.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                return;
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server gracefully"),
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn generate_sample(args: &SampleArgs) -> anyhow::Result<ExitCode> {
    use echostats_core::sample::{generate_export, SampleOptions};
    let opts = SampleOptions {
        extended_entries: args.entries,
        years: args.years,
        seed: args.seed,
        zip: args.zip,
        ..SampleOptions::small()
    };
    let s = generate_export(&args.out, &opts)
        .with_context(|| format!("writing the sample export to {}", args.out.display()))?;
    println!(
        "wrote {} files ({} extended entries, {} account-data entries) to {}",
        s.files.len(),
        s.extended_entries,
        s.account_entries,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
