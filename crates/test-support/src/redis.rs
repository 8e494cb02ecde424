//! A private Redis per test on a free loopback port: plain, TLS-only with a CA made for it,
//! or durable (append-only file, so a restart keeps the data). It can be killed (SIGKILL),
//! paused (SIGSTOP: it hangs with its connections open), resumed, and started again on the
//! same port with the same certificates and files.
//!
//! The binary comes from `PATH` (`scripts/setup-test-deps` installs it; a missing one fails
//! the test at spawn, naming it). Readiness is checked over raw RESP, independent of any
//! Redis client under test, and must come from our own process: tests on this machine run in
//! parallel, and one that restarts its Redis on a port we just picked must not become ours.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::process::ChildProcess;

/// The server binary, named once.
const BINARY: &str = "redis-server";

/// How a [`RedisServer`] runs.
#[derive(Clone, Debug, Default)]
pub struct RedisOptions {
    /// TLS only (`rediss://`, no plain port), with a certificate for `127.0.0.1` and
    /// `localhost` signed by a private CA made for this server ([`RedisServer::ca_file`]).
    pub tls: bool,
    /// `requirepass`; [`RedisServer::url`] carries it.
    pub password: Option<String>,
    /// Every write goes to an append-only file (fsync always) before Redis answers, so a
    /// SIGKILL and a restart lose nothing, as a production Redis holding OAuth state should
    /// be configured. Otherwise nothing is kept on disk and a restart comes back empty.
    pub durable: bool,
}

/// A running (or killed, ready to start again) Redis. Dropping it kills the process and
/// removes its files.
pub struct RedisServer {
    pub port: u16,
    options: RedisOptions,
    /// Certificates, the append-only file and the log; kept across restarts.
    dir: tempfile::TempDir,
    process: Option<ChildProcess>,
}

impl RedisServer {
    /// Whether the server binary is installed, for benchmarks that skip their Redis lines
    /// without it (a test just starts one, and fails naming the binary if it is missing).
    pub fn is_installed() -> bool {
        Command::new(BINARY)
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
    }

    /// Plain, keeping nothing on disk.
    pub fn start() -> RedisServer {
        Self::start_with(RedisOptions::default())
    }

    /// Plain, with an append-only file: a restart keeps the data.
    pub fn start_durable() -> RedisServer {
        Self::start_with(RedisOptions {
            durable: true,
            ..RedisOptions::default()
        })
    }

    pub fn start_with(options: RedisOptions) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("test-redis-")
            .tempdir()
            .expect("a temporary directory for Redis");
        if options.tls {
            write_certificates(dir.path());
        }
        let mut server = RedisServer {
            port: crate::free_port(),
            options,
            dir,
            process: None,
        };
        // Another test process on this machine may take the port between our pick and our
        // bind; then our server exits and we try a fresh port.
        for _ in 0..5 {
            if server.try_start() {
                return server;
            }
            server.port = crate::free_port();
        }
        panic!("{BINARY} could not bind a free port: {}", server.log_text());
    }

    /// `redis://` or `rediss://`, with the password if there is one.
    pub fn url(&self) -> String {
        let scheme = if self.options.tls { "rediss" } else { "redis" };
        let auth = match &self.options.password {
            Some(password) => format!(":{password}@"),
            None => String::new(),
        };
        format!("{scheme}://{auth}127.0.0.1:{}/", self.port)
    }

    /// The CA that signed a TLS server's certificate (PEM), for clients to trust.
    pub fn ca_file(&self) -> PathBuf {
        assert!(self.options.tls, "only a TLS Redis has a CA");
        self.dir.path().join("ca.pem")
    }

    /// Starts the server on its port after [`RedisServer::kill`] (a no-op while it runs):
    /// same URL, certificates and, if durable, data. Waits until it answers.
    pub fn start_again(&mut self) {
        if self.process.is_none() && !self.try_start() {
            panic!(
                "{BINARY} could not start again on port {}: {}",
                self.port,
                self.log_text()
            );
        }
    }

    /// Spawns the server and waits until it answers; `false` if it exited first (its port
    /// was taken).
    fn try_start(&mut self) -> bool {
        let port = self.port.to_string();
        let path = |name: &str| self.dir.path().join(name);
        let mut command = Command::new(BINARY);
        command.args([
            "--bind",
            "127.0.0.1",
            "--protected-mode",
            "yes",
            "--save",
            "",
        ]);
        if self.options.tls {
            command
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(path("server.pem"))
                .arg("--tls-key-file")
                .arg(path("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(path("ca.pem"));
        } else {
            command.args(["--port", &port]);
        }
        if let Some(password) = &self.options.password {
            command.args(["--requirepass", password]);
        }
        if self.options.durable {
            command
                .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                .arg(self.dir.path());
        } else {
            command.args(["--appendonly", "no"]);
        }
        self.process = Some(ChildProcess::spawn(BINARY, command, self.dir.path()));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.answers() {
                return true;
            }
            if !self.process.as_mut().is_some_and(ChildProcess::is_running) {
                self.process = None;
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "{BINARY} on port {port} not ready: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's log so far (all its runs), for failure messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{BINARY}.log"))).unwrap_or_default()
    }

    /// SIGKILL: Redis vanishes mid-flight (losing everything unless durable). It stays down
    /// until [`RedisServer::start_again`].
    pub fn kill(&mut self) {
        self.process = None;
    }

    /// Kill, then start again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
    }

    /// SIGSTOP: a hung Redis that keeps its connections open and its data.
    pub fn pause(&self) {
        assert!(self.running().signal("-STOP"), "SIGSTOP redis");
    }

    /// SIGCONT after [`RedisServer::pause`].
    pub fn resume(&self) {
        assert!(self.running().signal("-CONT"), "SIGCONT redis");
    }

    fn running(&self) -> &ChildProcess {
        self.process.as_ref().expect("Redis is running")
    }

    /// Whether this server (not another process on its port) answers now: for a plain
    /// one, `INFO server` over raw RESP names our process id; a TLS one accepts a connection
    /// while our process runs.
    pub fn answers(&self) -> bool {
        let Some(pid) = self.process.as_ref().and_then(ChildProcess::pid) else {
            return false;
        };
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        if self.options.tls {
            return true;
        }
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut request = Vec::new();
        if let Some(password) = &self.options.password {
            request.extend(resp_command(&["AUTH", password]));
        }
        request.extend(resp_command(&["INFO", "server"]));
        if stream.write_all(&request).is_err() {
            return false;
        }
        let mut seen = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = stream.read(&mut chunk) {
            seen.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&seen);
            if let Some(rest) = text.split("process_id:").nth(1)
                && let Some(end) = rest.find("\r\n")
            {
                return rest[..end].trim().parse() == Ok(pid);
            }
        }
        false
    }

    /// A plain connection for looking at the keys the code under test leaves behind.
    pub async fn inspect(&self) -> ::redis::aio::MultiplexedConnection {
        assert!(!self.options.tls, "inspect() speaks plain RESP");
        ::redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

/// One command as a RESP array of bulk strings.
fn resp_command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend(format!("${}\r\n{arg}\r\n", arg.len()).into_bytes());
    }
    out
}

/// A CA, and a server certificate for 127.0.0.1 and localhost signed by it, as PEM files in
/// `dir`: `ca.pem`, `server.pem`, `server.key`.
fn write_certificates(dir: &std::path::Path) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), server_cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
}
