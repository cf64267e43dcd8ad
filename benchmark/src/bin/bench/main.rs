//! `hookd-bench`: runs hookd as a separate process against a PostgreSQL the caller provides
//! (`scripts/benchmark` starts a durable one) and a fast receiver in this process, scenario by
//! scenario, and writes `results/<date>-<host>.json` and `.md`.
//!
//! Every figure comes from outside hookd: acks timed by the client, arrivals timed by the
//! receiver, resources read from `/proc`, sizes from PostgreSQL's catalogs.

mod hookd;
mod load;
mod report;
mod resources;
mod scenarios;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "hookd-bench", version)]
struct Args {
    /// The hookd binary to benchmark (build it with --release for figures that mean something).
    #[arg(long, default_value = "target/release/hookd")]
    hookd: PathBuf,
    /// A PostgreSQL superuser URL; each scenario creates (and recreates) its own database there.
    #[arg(long, env = "HOOKD_BENCH_PG_URL")]
    database_url: String,
    /// Where the results go.
    #[arg(long, default_value = "benchmark/results")]
    out: PathBuf,
    /// Where hookd's logs go (emptied first), one file per scenario and role.
    #[arg(long, default_value = ".hookd/bench-logs")]
    logs: PathBuf,
    /// Every scenario, small: a smoke run for CI, its figures mean nothing.
    #[arg(long)]
    quick: bool,
    /// Run only the scenarios whose names contain one of these.
    #[arg(long)]
    only: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // reqwest is built without a default TLS provider; the benchmark only speaks plain HTTP on
    // loopback, but building a client needs one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Last run's logs would mix with this run's: each process appends to its file.
    match std::fs::remove_dir_all(&args.logs) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot empty {}", args.logs.display())),
    }
    std::fs::create_dir_all(&args.logs)
        .with_context(|| format!("cannot create {}", args.logs.display()))?;
    let bench = scenarios::Bench {
        hookd: args.hookd,
        admin_url: args.database_url,
        logs: args.logs,
        scale: if args.quick {
            scenarios::Scale::Quick
        } else {
            scenarios::Scale::Full
        },
    };
    let mut results = Vec::new();
    for &name in scenarios::ALL {
        if !args.only.is_empty() && !args.only.iter().any(|o| name.contains(o.as_str())) {
            continue;
        }
        eprintln!("== {name}");
        let result = scenarios::run(&bench, name).await?;
        eprintln!("{}", serde_json::to_string(&result)?);
        results.push(report::Scenario { name, result });
    }
    let written = report::write(&args.out, &bench, &results).await?;
    for path in written {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
