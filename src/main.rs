//! The `mirrorctl` binary: parse the command line, set up logging, run, map errors to exit codes.
//! Everything else lives in the library (`mirrorctl::cli`).

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    // clap exits 2 on a usage error, which `plan` uses for "changes pending"; usage is 64 here.
    let cli = match mirrorctl::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { mirrorctl::cli::EXIT_USAGE } else { 0 });
        }
    };
    mirrorctl::cli::init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(70);
        }
    };
    match runtime.block_on(mirrorctl::cli::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{}", e.report());
            ExitCode::from(e.exit_code())
        }
    }
}
