use std::process::ExitCode;

use backrest_rs::cli::{self, Command};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let env = |k: &str| std::env::var(k).ok();
    let options = match cli::parse(std::env::args().skip(1), &env) {
        Ok(Command::Run(o)) => o,
        Ok(Command::Version) => {
            println!("backrest-rs version: {}", backrest_rs::VERSION);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Help) => {
            println!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("backrest-rs: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(backrest_rs::server::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("backrest-rs: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
