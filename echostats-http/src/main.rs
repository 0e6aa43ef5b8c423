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
            eprintln!("error: {}", error_message(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each said once. The library's errors already end with their
/// source's text (for API responses and logs), and sqlx's do too, so the plain chain
/// (`{:#}`) said "database \"x\" does not exist" three times.
fn error_message(e: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::error_message;
    use anyhow::Context;

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::other("database \"x\" does not exist");
        let core = echostats::Error::BackendUnavailable { backend: "postgres", source: Box::new(io) };
        let e = Err::<(), _>(core).context("opening postgres://h/x").unwrap_err();
        assert_eq!(error_message(&e), "opening postgres://h/x: postgres is unavailable: database \"x\" does not exist");
        // A cause that adds something is kept.
        let e = Err::<(), _>(std::io::Error::other("disk full")).context("cannot write out.csv").unwrap_err();
        assert_eq!(error_message(&e), "cannot write out.csv: disk full");
    }
}
