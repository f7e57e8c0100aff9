//! A throwaway Redis Cluster: three masters without replicas on free loopback ports, made with
//! `redis-cli --cluster create`, killed on drop. The CLI's tests include this file too
//! (`#[path]`), so both crates run the online store on the same cluster set-up.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisCluster {
    children: Vec<Child>,
    /// The masters' client ports.
    pub ports: Vec<u16>,
    /// Feast's `connection_string`: `127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`.
    pub connection_string: String,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisCluster {
    /// `None` when `redis-server` or `redis-cli` is missing (the cluster tests are then
    /// skipped, unless TWINLOOP_REQUIRE_ALL_BACKENDS=1 makes that a failure).
    pub fn start() -> Option<RedisCluster> {
        for tool in ["redis-server", "redis-cli"] {
            if Command::new(tool).arg("--version").output().is_err() {
                assert!(
                    std::env::var("TWINLOOP_REQUIRE_ALL_BACKENDS").as_deref() != Ok("1"),
                    "{tool} is not installed but TWINLOOP_REQUIRE_ALL_BACKENDS=1"
                );
                eprintln!("{tool} not found: skipping the Redis Cluster online store");
                return None;
            }
        }
        // Built first, so that a failed start still kills what it started.
        let mut cluster = RedisCluster {
            children: Vec::new(),
            ports: Vec::new(),
            connection_string: String::new(),
            dir: tempfile::tempdir().unwrap(),
        };
        for i in 0..3 {
            let (port, bus) = (free_port(), free_port());
            let node_dir = cluster.dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(&node_dir).unwrap();
            cluster.children.push(start_node(&node_dir, port, bus));
            cluster.ports.push(port);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for &port in &cluster.ports {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "redis-server did not start on {port}"
                );
                std::thread::sleep(Duration::from_millis(25));
            }
        }
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            created.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&created.stdout),
            String::from_utf8_lossy(&created.stderr)
        );
        for &port in &cluster.ports {
            while !cluster
                .cli(port, &["cluster", "info"])
                .contains("cluster_state:ok")
            {
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not reach cluster_state:ok"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        cluster.connection_string = nodes.join(",");
        Some(cluster)
    }

    /// `redis-cli -p PORT ARGS…`'s standard output.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn start_node(dir: &Path, port: u16, bus: u16) -> Child {
    Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--cluster-port",
            &bus.to_string(),
        ])
        .args(["--bind", "127.0.0.1", "--cluster-enabled", "yes"])
        .args([
            "--cluster-node-timeout",
            "5000",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--cluster-config-file")
        .arg(dir.join("nodes.conf"))
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
