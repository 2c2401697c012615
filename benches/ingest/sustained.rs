//! Sustained `track` at the shipped defaults, long enough to cross every cap: a minute against
//! a `sluice` process of its own (so its peak RSS is the server's), on a fresh database.
//!
//! - hostile: a fresh session id and a random browser build on every request. The live
//!   window fills past its 100 000 visitors, the dedup cache past its 250 000 fingerprints,
//!   the rate limiter holds a bucket per session and the user-agent cache misses every time;
//! - realistic (the comparison line, and the headline `track` figure over a long run):
//!   recurring sessions and real user agents.
//!
//! Each line reports the rate of the first and the last ten seconds: a structure whose cost
//! grows with what it holds shows up as a last window slower than the first, which a short
//! run never sees. `SLUICE_BENCH_COMPARE_BIN` names another build of the server (the one
//! before a change) to run both lines against too, in the same run.

use std::time::Duration;

use super::traffic::{Kind, Traffic};
use super::{Target, peak_rss_mib_of, track_load, verdict};

/// The first and last windows compared.
const WINDOW_SECONDS: usize = 10;

/// A `sluice` process on a port of its own.
pub struct ServerProcess {
    child: std::process::Child,
    pub url: String,
}

impl ServerProcess {
    /// Starts `binary` on `database_url` with the shipped defaults but for `env`, and waits
    /// until it accepts connections.
    pub async fn start(binary: &str, database_url: &str, env: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("port")
            .port();
        let child = std::process::Command::new(binary)
            .env("SLUICE_BIND", format!("127.0.0.1:{port}"))
            .env("SLUICE_DATABASE_URL", database_url)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .spawn()
            .expect("start sluice");
        for _ in 0..400 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The most memory the process has held.
    pub fn peak_rss_mib(&self) -> f64 {
        peak_rss_mib_of(self.child.id())
    }

    /// Samples the process's peak RSS every second, until `seconds` have passed.
    fn sample_peak_rss(&self, seconds: u64) -> tokio::task::JoinHandle<Vec<f64>> {
        let pid = self.child.id();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            for _ in 0..seconds {
                tick.tick().await;
                samples.push(peak_rss_mib_of(pid));
            }
            samples
        })
    }

    /// Stops it as an operator does (SIGTERM: it drains its buffer) and waits for it.
    pub fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Runs the sustained lines on `target`'s backend.
pub async fn run(target: &mut Target, seconds: u64, connections: usize) {
    let current = env!("CARGO_BIN_EXE_sluice").to_owned();
    let mut servers = vec![("this build", current)];
    if let Ok(before) = std::env::var("SLUICE_BENCH_COMPARE_BIN") {
        servers.push(("compared build", before));
    }
    for (build, binary) in &servers {
        let line = measure(target, binary, Kind::Hostile, seconds, connections).await;
        line.print(&format!("hostile traffic, {build}"));
    }
    // Realistic traffic on both builds too: a before/after comparison of a change that is
    // not about caches under attack reads this line.
    for (build, binary) in &servers {
        let line = measure(target, binary, Kind::Realistic, seconds, connections).await;
        line.print(&format!("realistic traffic, {build}"));
    }
}

/// What one minute of `track` did.
struct Sustained {
    per_second: Vec<u64>,
    refused: u64,
    /// The server's peak RSS after each second.
    peak_rss_mib: Vec<f64>,
    p99_ms: f64,
}

impl Sustained {
    fn window_rate(&self, window: &[u64]) -> f64 {
        window.iter().sum::<u64>() as f64 / window.len().max(1) as f64
    }

    fn print(&self, label: &str) {
        let windows: Vec<f64> = self
            .per_second
            .chunks(WINDOW_SECONDS)
            .map(|window| self.window_rate(window))
            .collect();
        let first = windows.first().copied().unwrap_or(0.0);
        let last = windows.last().copied().unwrap_or(0.0);
        let ratio = last / first.max(1.0);
        let rounded: Vec<String> = windows.iter().map(|rate| format!("{rate:.0}")).collect();
        let rss: Vec<String> = self
            .peak_rss_mib
            .chunks(WINDOW_SECONDS)
            .filter_map(|window| window.last())
            .map(|mib| format!("{mib:.0}"))
            .collect();
        println!(
            "sustained track, {label}, {} s: first {WINDOW_SECONDS} s {first:.0} req/s, last {WINDOW_SECONDS} s {last:.0} req/s, last/first = {ratio:.2} (target >= 0.90: {}); per {WINDOW_SECONDS} s [{}]; p99 {:.2} ms; {} refused; peak RSS by {WINDOW_SECONDS} s [{}] MiB",
            self.per_second.len(),
            verdict(ratio >= 0.9),
            rounded.join(", "),
            self.p99_ms,
            self.refused,
            rss.join(", ")
        );
    }
}

async fn measure(
    target: &mut Target,
    binary: &str,
    kind: Kind,
    seconds: u64,
    connections: usize,
) -> Sustained {
    let label = match kind {
        Kind::Hostile => "sustained_hostile",
        _ => "sustained_realistic",
    };
    let server = ServerProcess::start(binary, &target.database(label).await, &[]).await;
    let traffic = Traffic::new(kind);
    let sampler = server.sample_peak_rss(seconds);
    let run = track_load(
        &server.url,
        connections,
        Duration::from_secs(seconds),
        &[],
        traffic,
        0,
    )
    .await;
    let line = Sustained {
        per_second: run.per_second.clone(),
        refused: run.refused,
        peak_rss_mib: sampler.await.unwrap_or_default(),
        p99_ms: run.percentile(0.99),
    };
    server.stop();
    line
}
