//! `oxcd-bench`: parses and checks the command line, runs one workload, prints the summary
//! with the JSON line last. See the library, `oxcd_bench`.

use clap::{CommandFactory, Parser, error::ErrorKind};
use oxcd_bench::cli::Cli;

/// mimalloc instead of glibc malloc: the load generator shares the cores with the servers it
/// measures, and every request allocates and frees gRPC buffers across its worker threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Err(message) = cli.validate() {
        Cli::command()
            .error(ErrorKind::ValueValidation, message)
            .exit();
    }
    let summary = oxcd_bench::run(&cli).await?;
    print!("{}", summary.human());
    println!("{}", summary.json());
    Ok(())
}
