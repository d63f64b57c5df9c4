//! Test support for the Redis-backed store: a private `redis-server` on a
//! free loopback port ([`RedisServer`]) and a real 3-master Redis Cluster
//! ([`RedisCluster`]), both killed when dropped.
//!
//! Owns starting, stopping and restarting those processes for tests. It must
//! not reach anything outside 127.0.0.1, and it must never let a test pass
//! without Redis: when neither the `redis-server` binary nor `REDIS_URL`
//! works it panics with what to install, rather than skipping.
//!
//! A process killed with SIGKILL cannot run `Drop`, so a test binary killed
//! that way leaves its servers behind; they hold nothing (`--save ''`,
//! `--appendonly no`) and use ports in 20000-29999.

// A test-support crate: failing loudly is its contract.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

pub mod fake;

use std::fmt;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a fresh server (or cluster) may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Ports are drawn from 20000-29999 so that a cluster node's bus port
/// (port + 10000) stays below 40000 and outside Linux's ephemeral range.
const PORT_RANGE: std::ops::Range<u16> = 20_000..30_000;

const INSTALL_HINT: &str = "install Redis (Debian/Ubuntu: `apt-get install redis-server redis-tools`), \
     or set REDIS_URL to a Redis the tests may use";

/// A prefix no other test in this process or a parallel one uses, for
/// tests that share one Redis (the `REDIS_URL` fallback).
pub fn unique_prefix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "t{}-{}-{}:",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        let unique = unique_prefix();
        let path = std::env::temp_dir().join(format!(
            "switchboard-{label}-{}",
            unique.trim_end_matches(':')
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port whose number and bus port (+10000) are both free right now.
fn free_port() -> u16 {
    for _ in 0..200 {
        let port = PORT_RANGE.start + random_below(PORT_RANGE.end - PORT_RANGE.start);
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
    panic!("no free loopback port pair in {PORT_RANGE:?} after 200 tries");
}

fn random_below(n: u16) -> u16 {
    // Distinct per call and per process; no need for a random crate.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ (u64::from(std::process::id()) << 32)
        ^ COUNTER
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .rotate_left(17);
    let mixed = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33;
    (mixed % u64::from(n)) as u16
}

/// Sends one command over a fresh connection.
fn query(url: &str, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(url)?;
    let mut connection = client.get_connection_with_timeout(Duration::from_secs(2))?;
    connection.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut command = redis::cmd(args[0]);
    for arg in &args[1..] {
        command.arg(*arg);
    }
    command.query(&mut connection)
}

fn answers_ping(url: &str) -> bool {
    matches!(query(url, &["PING"]), Ok(redis::Value::SimpleString(s)) if s == "PONG")
}

/// One `redis-server` process this test owns.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Spawned {
    Running(Process),
    /// The port was taken between the check and the bind.
    PortTaken,
    /// No `redis-server` binary on this machine.
    NoBinary,
}

fn spawn_server(dir: &Path, port: u16, extra: &[&str]) -> Spawned {
    let log = dir.join(format!("redis-{port}.log"));
    let log_file = std::fs::File::create(&log)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
    let log_err = log_file
        .try_clone()
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", log.display()));
    let port_text = port.to_string();
    let mut command = Command::new("redis-server");
    command
        .args(["--port", &port_text, "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err);
    let child = match command.spawn() {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Spawned::NoBinary,
        Err(error) => panic!("cannot start redis-server: {error}; {INSTALL_HINT}"),
    };
    let mut process = Process { child, log };
    let url = format!("redis://127.0.0.1:{port}");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if answers_ping(&url) {
            return Spawned::Running(process);
        }
        if let Ok(Some(status)) = process.child.try_wait() {
            let log = std::fs::read_to_string(&process.log).unwrap_or_default();
            if log.contains("Address already in use") {
                return Spawned::PortTaken;
            }
            panic!("redis-server on port {port} exited ({status}) before answering PING:\n{log}");
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(&process.log).unwrap_or_default();
            process.kill();
            panic!(
                "redis-server on port {port} did not answer PING within {START_TIMEOUT:?}:\n{log}"
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A private `redis-server` on a free 127.0.0.1 port, killed on drop. Falls
/// back to `REDIS_URL` (no stop/restart then) when the binary is missing.
pub struct RedisServer {
    port: u16,
    url: String,
    extra: Vec<String>,
    process: Option<Process>,
    /// `None` when running against `REDIS_URL`.
    dir: Option<TempDir>,
    tls: Option<Tls>,
}

/// The TLS side of a server from [`RedisServer::start_tls`].
struct Tls {
    port: u16,
    ca_file: PathBuf,
    _certificates: TempDir,
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("private", &self.dir.is_some())
            .field("running", &self.process.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisServer {
    /// Starts a private server; panics (never skips) when Redis is missing.
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// As [`RedisServer::start`], with extra `redis-server` arguments.
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let dir = TempDir::new("redis");
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        for _ in 0..10 {
            let port = free_port();
            let args: Vec<&str> = extra.iter().map(String::as_str).collect();
            match spawn_server(dir.path(), port, &args) {
                Spawned::Running(process) => {
                    return RedisServer {
                        port,
                        url: format!("redis://127.0.0.1:{port}"),
                        extra,
                        process: Some(process),
                        dir: Some(dir),
                        tls: None,
                    };
                }
                Spawned::PortTaken => {}
                Spawned::NoBinary => return Self::external(),
            }
        }
        panic!("redis-server could not get a free port in 10 tries");
    }

    fn external() -> RedisServer {
        let Ok(url) = std::env::var("REDIS_URL") else {
            panic!("redis-server is not on PATH and REDIS_URL is not set; {INSTALL_HINT}");
        };
        if !answers_ping(&url) {
            panic!(
                "redis-server is not on PATH and REDIS_URL does not answer PING; {INSTALL_HINT}"
            );
        }
        let port = url::port_of(&url);
        RedisServer {
            port,
            url,
            extra: Vec::new(),
            process: None,
            dir: None,
            tls: None,
        }
    }

    /// A private server that also listens with TLS on a second port, its
    /// certificate (for 127.0.0.1) signed by a throwaway CA made with the
    /// `openssl` command. Plain [`RedisServer::url`] still works, for
    /// inspecting what was stored.
    pub fn start_tls() -> RedisServer {
        let certificates = TempDir::new("redis-tls");
        let dir = certificates.path();
        let ca_file = dir.join("ca.crt");
        let openssl = |args: &[&str]| {
            let output = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot run openssl to make test certificates: {e}; apt-get install openssl"
                    )
                });
            assert!(
                output.status.success(),
                "openssl {args:?} failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.crt",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=switchboard-test-ca",
                ],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=127.0.0.1",
                ],
            ]
            .concat(),
        );
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n")
            .unwrap_or_else(|e| panic!("cannot write san.ext: {e}"));
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
        let tls_port = free_port();
        let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let tls_port_text = tls_port.to_string();
        let (cert, key, ca) = (path("server.crt"), path("server.key"), path("ca.crt"));
        let mut server = Self::start_with(&[
            "--tls-port",
            &tls_port_text,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ]);
        assert!(
            server.is_private(),
            "the TLS tests need the redis-server binary; {INSTALL_HINT}"
        );
        server.tls = Some(Tls {
            port: tls_port,
            ca_file,
            _certificates: certificates,
        });
        server
    }

    /// `rediss://127.0.0.1:PORT` for a server from [`RedisServer::start_tls`].
    pub fn tls_url(&self) -> Option<String> {
        self.tls
            .as_ref()
            .map(|tls| format!("rediss://127.0.0.1:{}", tls.port))
    }

    /// The PEM of the CA that signed the TLS certificate.
    pub fn ca_file(&self) -> Option<&Path> {
        self.tls.as_ref().map(|tls| tls.ca_file.as_path())
    }

    /// `redis://127.0.0.1:PORT` (or `REDIS_URL`).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// True for a server this test started (so it can stop and restart).
    pub fn is_private(&self) -> bool {
        self.dir.is_some()
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url.as_str()).unwrap_or_else(|e| panic!("bad test Redis URL: {e}"))
    }

    /// A plain synchronous connection for inspecting what the code stored.
    pub fn connection(&self) -> redis::Connection {
        self.client()
            .get_connection_with_timeout(Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("cannot connect to the test Redis at {}: {e}", self.url))
    }

    /// Kills the server (an outage); the port stays reserved for
    /// [`RedisServer::restart`].
    pub fn stop(&mut self) {
        assert!(
            self.is_private(),
            "this test stops Redis, which needs the redis-server binary (REDIS_URL cannot be stopped); {INSTALL_HINT}"
        );
        if let Some(process) = self.process.take() {
            process.kill();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing is
    /// answered, the way an overloaded or partitioned Redis looks.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Undoes [`RedisServer::pause`].
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let process = self.process.as_ref().unwrap_or_else(|| {
            panic!("this test pauses Redis, which needs a private redis-server; {INSTALL_HINT}")
        });
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(process.child.id().to_string())
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(status.success(), "kill -{name} failed: {status}");
    }

    /// Starts the server again on the same port (empty: nothing is saved).
    pub fn restart(&mut self) {
        self.stop();
        let dir = self
            .dir
            .as_ref()
            .map(TempDir::path)
            .expect("private server");
        let args: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match spawn_server(dir, self.port, &args) {
                Spawned::Running(process) => {
                    self.process = Some(process);
                    return;
                }
                // The old socket may linger for a moment.
                Spawned::PortTaken if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Spawned::PortTaken => panic!("port {} stayed taken after stop", self.port),
                Spawned::NoBinary => panic!("redis-server vanished; {INSTALL_HINT}"),
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(process) = self.process.take() {
            // A stopped process still dies of SIGKILL; CONT is for tidiness.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(process.child.id().to_string())
                .status();
            process.kill();
        }
    }
}

/// A real Redis Cluster of `masters` nodes on loopback, no replicas, killed
/// on drop. Needs `redis-server` and `redis-cli`; there is no fallback.
pub struct RedisCluster {
    ports: Vec<u16>,
    processes: Vec<Process>,
    _dir: TempDir,
}

impl fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCluster")
            .field("ports", &self.ports)
            .finish_non_exhaustive()
    }
}

impl RedisCluster {
    /// Starts the nodes, joins them with `redis-cli --cluster create` and
    /// waits until every node reports `cluster_state:ok`.
    pub fn start(masters: usize) -> RedisCluster {
        assert!(masters >= 3, "Redis Cluster needs at least 3 masters");
        let dir = TempDir::new("redis-cluster");
        let mut ports = Vec::with_capacity(masters);
        let mut processes = Vec::with_capacity(masters);
        while processes.len() < masters {
            let port = free_port();
            let node_dir = dir.path().join(port.to_string());
            std::fs::create_dir_all(&node_dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", node_dir.display()));
            let args = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "5000",
            ];
            match spawn_server(&node_dir, port, &args) {
                Spawned::Running(process) => {
                    ports.push(port);
                    processes.push(process);
                }
                Spawned::PortTaken => {}
                Spawned::NoBinary => panic!(
                    "redis-server is not on PATH; the cluster tests need it and redis-cli; {INSTALL_HINT}"
                ),
            }
        }
        let cluster = RedisCluster {
            ports,
            processes,
            _dir: dir,
        };
        cluster.create();
        cluster.wait_until_ok();
        cluster
    }

    fn create(&self) {
        let nodes: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli: {e}; {INSTALL_HINT}"));
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn wait_until_ok(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let infos: Vec<String> = self
                .node_urls()
                .iter()
                .map(|url| match query(url, &["CLUSTER", "INFO"]) {
                    Ok(redis::Value::BulkString(bytes)) => {
                        String::from_utf8_lossy(&bytes).into_owned()
                    }
                    Ok(redis::Value::VerbatimString { text, .. }) => text,
                    other => format!("{other:?}"),
                })
                .collect();
            let known = format!("cluster_known_nodes:{}", self.ports.len());
            if infos.iter().all(|info| {
                info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_ok:16384")
                    && info.contains(&known)
            }) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not reach cluster_state:ok within {START_TIMEOUT:?}:\n{infos:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...`, the store's form.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// Each node as `redis://127.0.0.1:PORT`.
    pub fn node_urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// Plain synchronous connections, one per master, for inspecting keys
    /// (SCAN runs per node on a cluster).
    pub fn node_connections(&self) -> Vec<redis::Connection> {
        self.node_urls()
            .iter()
            .map(|url| {
                redis::Client::open(url.as_str())
                    .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
                    .unwrap_or_else(|e| panic!("cannot connect to cluster node {url}: {e}"))
            })
            .collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for process in self.processes.drain(..) {
            process.kill();
        }
    }
}

mod url {
    /// The port of a `redis://host:port/...` URL, 6379 when absent.
    pub fn port_of(url: &str) -> u16 {
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let authority = rest.split('/').next().unwrap_or(rest);
        let host_port = authority.rsplit('@').next().unwrap_or(authority);
        host_port
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or(6379)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_server_answers_and_comes_back_after_restart() {
        let mut server = RedisServer::start();
        let mut connection = server.connection();
        let _: () = redis::cmd("SET")
            .arg("k")
            .arg("v")
            .query(&mut connection)
            .unwrap();
        server.stop();
        assert!(!answers_ping(server.url()));
        server.restart();
        assert!(answers_ping(server.url()));
        let mut connection = server.connection();
        let value: Option<String> = redis::cmd("GET").arg("k").query(&mut connection).unwrap();
        assert_eq!(value, None, "a restarted test server starts empty");
    }

    #[test]
    fn a_dropped_server_stops_answering() {
        let server = RedisServer::start();
        let url = server.url().to_owned();
        drop(server);
        assert!(!answers_ping(&url));
    }

    #[test]
    fn a_three_master_cluster_serves_every_slot() {
        let cluster = RedisCluster::start(3);
        let client = redis::cluster::ClusterClient::new(cluster.node_urls()).unwrap();
        let mut connection = client.get_connection().unwrap();
        for i in 0..50 {
            let _: () = redis::cmd("SET")
                .arg(format!("key-{i}"))
                .arg(i)
                .query(&mut connection)
                .unwrap();
        }
        let keys_per_node: Vec<usize> = cluster
            .node_connections()
            .iter_mut()
            .map(|c| redis::cmd("DBSIZE").query::<usize>(c).unwrap())
            .collect();
        assert_eq!(keys_per_node.iter().sum::<usize>(), 50);
        assert!(
            keys_per_node.iter().all(|n| *n > 0),
            "keys should spread over all masters: {keys_per_node:?}"
        );
    }

    #[test]
    fn ports_come_from_the_reserved_range() {
        for _ in 0..20 {
            assert!(PORT_RANGE.contains(&free_port()));
        }
    }

    #[test]
    fn the_port_is_read_from_a_redis_url() {
        assert_eq!(url::port_of("redis://127.0.0.1:6380/0"), 6380);
        assert_eq!(url::port_of("redis://:pw@host:7000"), 7000);
        assert_eq!(url::port_of("redis://host"), 6379);
    }
}
