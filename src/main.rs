use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = gaze::cli::Cli::parse();
    match gaze::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
