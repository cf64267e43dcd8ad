//! `hookd-receiver`: a chaotic (or, with `--mix ok=1`, fast) webhook receiver on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use hookd_benchmark::receiver::{Mix, ReceiverConfig, start};
use hookd_engine::secret::SigningSecret;

/// Receives webhooks, verifies their signatures, answers with a chosen mix of behaviours and
/// keeps a record (GET /_stats, GET /_accepted).
#[derive(Debug, Parser)]
#[command(name = "hookd-receiver", version)]
struct Args {
    /// Address to listen on (loopback).
    #[arg(long, default_value = "127.0.0.1:9300")]
    listen: SocketAddr,
    /// A whsec_ secret signatures may verify with; repeat during a rotation.
    #[arg(long, required = true)]
    secret: Vec<String>,
    /// Weighted behaviours: ok, error (500), throttle (429), gone (410), slow, hang, drop.
    #[arg(long, default_value = "ok=1")]
    mix: String,
    /// How long a `slow` answer takes, in ms.
    #[arg(long, default_value_t = 200)]
    slow_ms: u64,
    /// How long a `hang` takes before answering, in ms (longer than hookd's timeout).
    #[arg(long, default_value_t = 30_000)]
    hang_ms: u64,
    /// The Retry-After of a `throttle` answer, in seconds.
    #[arg(long, default_value_t = 1)]
    retry_after: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let secrets = args
        .secret
        .iter()
        .map(|s| SigningSecret::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let receiver = start(
        args.listen,
        ReceiverConfig {
            secrets,
            mix: Mix::parse(&args.mix)?,
            slow: Duration::from_millis(args.slow_ms),
            hang: Duration::from_millis(args.hang_ms),
            retry_after_secs: args.retry_after,
        },
    )
    .await?;
    // Scripts read this line to find the port.
    println!("hookd-receiver listening on http://{}", receiver.addr);
    tokio::signal::ctrl_c().await?;
    println!(
        "{}",
        receiver
            .record
            .lock()
            .map(|r| r.stats())
            .unwrap_or_default()
    );
    Ok(())
}
