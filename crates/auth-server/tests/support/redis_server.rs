//! A private `redis-server` per test on a free loopback port, keeping nothing on disk.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    /// Where an append-only file is kept, if any (survives a restart).
    aof_dir: Option<std::path::PathBuf>,
}

/// A free loopback port never handed out before in this process: a test that kills its
/// Redis and restarts it on the same port must not find another test's Redis there.
fn free_port() -> u16 {
    static USED: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let mut used = USED.lock().unwrap_or_else(|p| p.into_inner());
        if !used.contains(&port) {
            used.push(port);
            return port;
        }
    }
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_on(free_port(), None)
    }

    /// A Redis that writes every change to an append-only file in `dir` before answering,
    /// so a SIGKILL and a restart lose nothing (as a production Redis holding OAuth state
    /// should be configured).
    pub fn start_durable(dir: &std::path::Path) -> RedisServer {
        Self::start_on(free_port(), Some(dir.to_owned()))
    }

    /// Starts on `port` (a restart after [`RedisServer::kill`] keeps the URL).
    fn start_on(port: u16, aof_dir: Option<std::path::PathBuf>) -> RedisServer {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--protected-mode", "yes"]);
        match &aof_dir {
            Some(dir) => command
                .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                .arg(dir),
            None => command.args(["--appendonly", "no"]),
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}); run scripts/setup-test-deps to install it")
            });
        let server = RedisServer {
            port,
            child: Some(child),
            aof_dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.answers() {
            assert!(
                Instant::now() < deadline,
                "redis-server on {port} not ready"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// SIGKILL: Redis vanishes mid-flight.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A Redis on the same port again: empty, unless started durable.
    pub fn restart(&mut self) {
        self.kill();
        *self = Self::start_on(self.port, self.aof_dir.take());
    }

    /// Raw PING over RESP, independent of the crate under test.
    pub fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 16];
        s.write_all(b"*1\r\n$4\r\nPING\r\n").is_ok()
            && matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
    }

    /// A plain connection for looking at the keys the store leaves behind.
    pub async fn inspect(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            let _ = signal(child.id(), "-CONT");
        }
        self.kill();
    }
}

impl RedisServer {
    fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    /// SIGSTOP / SIGCONT: a hung Redis that keeps its connections open.
    pub fn pause(&self) {
        assert!(signal(self.pid(), "-STOP"), "SIGSTOP redis");
    }

    pub fn resume(&self) {
        assert!(signal(self.pid(), "-CONT"), "SIGCONT redis");
    }
}

fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}
