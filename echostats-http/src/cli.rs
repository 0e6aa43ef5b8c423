//! Command-line options (every option is also an environment variable) and commands.

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use echostats::analytics::{self, OverviewRequest, Period};
use echostats::ingest::{self, FileStatus, ImportOptions, ImportSummary};
use echostats::PlayRules;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Self-hosted Spotify listening statistics.
#[derive(Parser, Debug)]
#[command(name = "echostats", version, about)]
pub struct Cli {
    /// Where data lives: sqlite://FILE (default: a file in your data directory), postgres://..., memory://
    #[arg(long, global = true, env = "ECHOSTATS_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Whose data (one store can hold several people).
    #[arg(long, global = true, env = "ECHOSTATS_USER", default_value = "local")]
    pub user: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Import a Spotify export: my_spotify_data.zip, a folder, or .json files.
    Import(ImportArgs),
    /// Print the statistics of a period.
    Report(ReportArgs),
    /// Write a synthetic Spotify export (for demos and benchmarks).
    GenerateSample(SampleArgs),
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

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Extended-history entries.
    #[arg(long, default_value_t = 6_000)]
    pub entries: usize,
    /// Years covered.
    #[arg(long, default_value_t = 4)]
    pub years: u32,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Write my_spotify_data.zip instead of folders.
    #[arg(long)]
    pub zip: bool,
}

fn parse_period(s: &str) -> Result<Period, String> {
    s.parse().map_err(|e: echostats::Error| e.to_string())
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
    let store = echostats::open_store(&url).await.with_context(|| format!("opening {url}"))?;
    match cli.command {
        Command::Import(args) => import(&*store, &cli.user, &args).await,
        Command::Report(args) => {
            let req = OverviewRequest { period: args.period, tz: args.tz, now: None, top_limit: args.top };
            let overview = analytics::overview(&*store, &cli.user, &req).await?;
            match args.format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&overview)?),
                Format::Text => {
                    let shows = analytics::top_shows(&*store, &cli.user, args.period, req.now(), 5).await?;
                    print!("{}", crate::report::render(&overview, &shows));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::GenerateSample(_) => unreachable!("handled above"),
    }
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
            "{} entries read, {} added, {} duplicates — {}",
            s.entries(),
            s.outcome.added,
            s.outcome.duplicates,
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
    let rejected: u64 = s.rejected.values().sum();
    let _ = writeln!(out, "Rejected: {rejected}");
    for (reason, n) in &s.rejected {
        let _ = writeln!(out, "  {n} × {reason}");
    }
    let _ = writeln!(out, "Time: {:.2} s", s.elapsed.as_secs_f64());
    out
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
