//! A private redis-server per test, on a free loopback port, keeping nothing on disk.

use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::process::ChildProcess;

pub struct RedisServer {
    pub port: u16,
    process: ChildProcess,
}

impl RedisServer {
    /// Starts `redis-server` (installed by `scripts/setup-test-deps`) and waits for PING.
    pub async fn start() -> RedisServer {
        Self::start_on(crate::free_port()).await
    }

    /// Starts on a given port (a restart after [`RedisServer::kill`] keeps the URL).
    pub async fn start_on(port: u16) -> RedisServer {
        let mut command = Command::new("redis-server");
        command.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
        ]);
        let process = ChildProcess::spawn(&format!("redis-{port}"), command);
        let server = RedisServer { port, process };
        server.wait_ready(Duration::from_secs(10)).await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// SIGKILL: Redis disappears mid-flight.
    pub async fn kill(&mut self) {
        self.process.kill_hard().await;
    }

    async fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if ping(self.port).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "redis-server on port {} not ready: {}",
            self.port,
            self.process.log_text()
        );
    }
}

/// A raw RESP PING, so the harness needs no Redis client library.
async fn ping(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if stream.write_all(b"*1\r\n$4\r\nPING\r\n").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(stream.read(&mut buf).await, Ok(n) if buf[..n].starts_with(b"+PONG"))
}
