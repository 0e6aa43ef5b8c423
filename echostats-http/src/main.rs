//! `echostats`: import a Spotify export and see its statistics from the terminal, or serve
//! them over the EchoStats REST API.

mod cli;
mod report;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    // A server logs each request (with its id) at info; the one-shot commands only warnings.
    let default_filter = match cli.command {
        cli::Command::Serve(_) => "warn,echostats_http=info",
        // sqlx times a query until its last row is consumed: an export's one read of every
        // play lasts as long as writing the files, which is not a slow statement.
        cli::Command::Export(_) => "warn,sqlx::query=error",
        _ => "warn",
    };
    let filter = cli.log.as_deref().unwrap_or(default_filter);
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
