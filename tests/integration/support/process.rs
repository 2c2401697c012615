//! Running the real `sluice` binary as a separate process.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::ADMIN_TOKEN;

/// A `sluice` process serving on a free local port; killed on drop if still running.
pub struct SluiceProcess {
    pub child: Child,
    pub port: u16,
}

impl SluiceProcess {
    /// Starts `sluice` on `database_url` and waits until it serves.
    pub async fn start(database_url: &str) -> Self {
        Self::start_with(database_url, &[]).await
    }

    /// Starts `sluice` with extra environment variables.
    pub async fn start_with(database_url: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn(database_url, env, Stdio::inherit()).await
    }

    /// Starts `sluice` with extra environment variables, its log (at `RUST_LOG`, which `env`
    /// may set) going to `log` rather than to the test's output.
    pub async fn start_logging_to(
        database_url: &str,
        env: &[(&str, &str)],
        log: std::fs::File,
    ) -> Self {
        Self::spawn(database_url, env, Stdio::from(log)).await
    }

    async fn spawn(database_url: &str, env: &[(&str, &str)], stderr: Stdio) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .env("SLUICE_BIND", format!("127.0.0.1:{port}"))
            .env("SLUICE_DATABASE_URL", database_url)
            .env("SLUICE_BATCH_TIMEOUT_MS", "3600000")
            .env("SLUICE_ADMIN_TOKEN", ADMIN_TOKEN)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start the sluice binary");
        let mut process = Self { child, port };
        process.wait_until_serving().await;
        process
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sends a signal (`TERM`, `INT`, `KILL`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal}");
    }

    pub async fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if tokio::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("sluice did not exit within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the server answers HTTP (any status: `/readyz` may report a database
    /// that is down on purpose). The port accepts connections before the server has built
    /// its pipeline, so a listening port is not yet a serving one.
    async fn wait_until_serving(&mut self) {
        for _ in 0..300 {
            if self.answers_http().await {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sluice exited early: {status}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("sluice did not serve on {}", self.port);
    }

    async fn answers_http(&self) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        let request = b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        if stream.write_all(request).await.is_err() {
            return false;
        }
        let mut head = [0; 5];
        stream.read_exact(&mut head).await.is_ok() && &head == b"HTTP/"
    }
}

impl Drop for SluiceProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}
