//! A single-member etcd on loopback, started as controller-runtime's envtest starts it
//! (pkg/internal/testing/controlplane/etcd.go): plain-HTTP client and peer URLs on free ports, a
//! fresh data directory, `--unsafe-no-fsync` where the binary has it (etcd 3.5+). It also names
//! itself and its initial cluster after the peer URL, so two etcds side by side (hub and member)
//! never share the default `http://localhost:2380`.

use super::WAIT;
use super::process::{Process, free_port, http, say};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub struct Etcd {
    process: Process,
    client_url: String,
    client_addr: String,
    /// Removed after the process is reaped (fields drop in declaration order).
    dir: TempDir,
}

impl Etcd {
    /// Starts etcd and waits (up to [`WAIT`]) until `/health` reports healthy. A start that
    /// lost a race for its port is retried with new ports.
    pub async fn start(binary: &Path) -> Etcd {
        let no_fsync = has_flag(binary, "--unsafe-no-fsync");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let dir = tempfile::Builder::new()
                .prefix("sovra-etcd-")
                .tempdir()
                .unwrap_or_else(|e| panic!("etcd temp dir: {e}"));
            let client_addr = format!("127.0.0.1:{}", free_port());
            let peer_url = format!("http://127.0.0.1:{}", free_port());
            let client_url = format!("http://{client_addr}");
            let mut args = vec![
                "--name=sovra-test".to_owned(),
                format!("--data-dir={}", dir.path().join("data").display()),
                format!("--listen-client-urls={client_url}"),
                format!("--advertise-client-urls={client_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=sovra-test={peer_url}"),
            ];
            if no_fsync {
                args.push("--unsafe-no-fsync=true".to_owned());
            }
            let log = dir.path().join("etcd.log");
            let process = Process::spawn("etcd", binary, &args, &log);
            let mut etcd = Etcd {
                process,
                client_url,
                client_addr,
                dir,
            };
            match etcd.wait_healthy().await {
                Ok(elapsed) => {
                    say(&format!(
                        "real-server: etcd {} healthy at {} after {elapsed:.1?}",
                        binary.display(),
                        etcd.client_url
                    ));
                    return etcd;
                }
                Err(log) if attempt < 3 && log.contains("address already in use") => continue,
                Err(_) => {
                    let what = format!("etcd /health at {}", etcd.client_url);
                    etcd.process.fail(&what, "")
                }
            }
        }
    }

    /// `Ok(time taken)` once healthy; `Err(log)` if the process ended or the wait timed out.
    async fn wait_healthy(&mut self) -> Result<Duration, String> {
        let started = Instant::now();
        while started.elapsed() < WAIT {
            if self.process.exited().is_some() {
                return Err(self.process.log());
            }
            let health = http(&self.client_addr, "GET", "/health", "");
            if matches!(&health, Ok((200, body)) if body.contains("\"health\":\"true\"")) {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(String::new())
    }

    /// The client URL, for `--etcd-servers`.
    pub fn client_url(&self) -> &str {
        &self.client_url
    }

    /// `host:port` of the client URL.
    pub fn client_addr(&self) -> &str {
        &self.client_addr
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The temp directory holding the data directory and the log.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// Puts a key through etcd's v3 JSON gateway (`/v3/kv/put`; keys and values are base64).
    pub fn put(&self, key: &str, value: &str) {
        let body =
            serde_json::json!({"key": base64(key.as_bytes()), "value": base64(value.as_bytes())});
        let (status, response) = http(&self.client_addr, "POST", "/v3/kv/put", &body.to_string())
            .unwrap_or_else(|e| panic!("etcd put {key}: {e}"));
        assert_eq!(status, 200, "etcd put {key}: {response}");
    }

    /// Reads a key back through `/v3/kv/range`.
    pub fn get(&self, key: &str) -> Option<String> {
        let body = serde_json::json!({"key": base64(key.as_bytes())});
        let (status, response) = http(&self.client_addr, "POST", "/v3/kv/range", &body.to_string())
            .unwrap_or_else(|e| panic!("etcd range {key}: {e}"));
        assert_eq!(status, 200, "etcd range {key}: {response}");
        let response: serde_json::Value = serde_json::from_str(&response)
            .unwrap_or_else(|e| panic!("etcd range {key}: {e}: {response}"));
        let value = response.pointer("/kvs/0/value")?.clone();
        let bytes: k8s_openapi::ByteString = serde_json::from_value(value).ok()?;
        String::from_utf8(bytes.0).ok()
    }
}

/// Standard base64, through k8s-openapi's `ByteString` (which serializes as base64).
pub fn base64(bytes: &[u8]) -> String {
    match serde_json::to_value(k8s_openapi::ByteString(bytes.to_vec())) {
        Ok(serde_json::Value::String(encoded)) => encoded,
        other => panic!("ByteString serialized as {other:?}"),
    }
}

/// Whether `binary --help` lists `flag` (envtest's CheckFlag, for flags newer etcds added).
fn has_flag(binary: &Path, flag: &str) -> bool {
    Command::new(binary)
        .arg("--help")
        .output()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout).contains(flag)
                || String::from_utf8_lossy(&out.stderr).contains(flag)
        })
        .unwrap_or(false)
}
