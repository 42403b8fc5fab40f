//! The operator as its own process: the release `sovra run` binary against the in-process hub,
//! killed when dropped (so a failing bench leaves nothing running), with its resident memory
//! sampled from `/proc/<pid>/status`.

use super::support;
use super::topology::OPERATOR_NAMESPACE;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The label of the workload controller's metrics.
const WORKLOAD_CONTROLLER: &str = r#"controller="workload""#;

/// The operator's `--concurrency` (its default, from RunArgs); the replay uses the same.
pub const CONCURRENCY: usize = 8;

pub struct Operator {
    child: Child,
    pub http: SocketAddr,
    pub rss: Arc<Rss>,
    sampler: tokio::task::JoinHandle<()>,
    log: PathBuf,
}

/// Resident set sizes in KiB: the latest sample and the highest since the last reset.
#[derive(Default)]
pub struct Rss {
    current: AtomicU64,
    peak: AtomicU64,
}

impl Rss {
    pub fn current_mib(&self) -> f64 {
        mib(self.current.load(Ordering::Relaxed))
    }

    pub fn peak_mib(&self) -> f64 {
        mib(self.peak.load(Ordering::Relaxed))
    }

    /// Starts a new phase: its peak begins at the current size.
    pub fn reset_peak(&self) {
        self.peak
            .store(self.current.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    fn record(&self, kib: u64) {
        self.current.store(kib, Ordering::Relaxed);
        self.peak.fetch_max(kib, Ordering::Relaxed);
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Whether the operator serving on `http` says its caches are synced (`/readyz` is 200).
pub async fn ready(http: SocketAddr) -> bool {
    support::http_get(http, "/readyz")
        .await
        .is_some_and(|(code, _)| code == 200)
}

/// A field of `/proc/<pid>/status` in KiB (VmRSS, VmHWM).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The CPU time (user and system) a process has used so far, from `/proc/<pid>/stat` (`self`
/// for the bench's own process: its servers and clients). The kernel counts it in `USER_HZ`
/// ticks, which Linux fixes at 100 a second for what it shows in `/proc`.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// The allocator settings the operator is deployed with (`MIMALLOC_*` in `deploy/operator.yaml`,
/// which the chart's are tested against): the bench measures the operator as it runs there.
fn allocator_env() -> Vec<(String, String)> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/operator.yaml");
    let text = std::fs::read_to_string(manifest).unwrap();
    let mut lines = text.lines().map(str::trim);
    let mut env = Vec::new();
    while let Some(line) = lines.next() {
        if let Some(name) = line.strip_prefix("- name: MIMALLOC_") {
            let value = lines
                .next()
                .and_then(|l| l.strip_prefix("value: "))
                .unwrap();
            env.push((
                format!("MIMALLOC_{name}"),
                value.trim_matches('"').to_owned(),
            ));
        }
    }
    assert!(!env.is_empty(), "deploy/operator.yaml sets the allocator");
    env
}

impl Operator {
    /// Starts `sovra run` against the hub whose kubeconfig is `kubeconfig`; the audit trail
    /// and the process's log live in `dir`, the log named after `label`.
    pub fn start(dir: &Path, kubeconfig: &Path, label: &str) -> Operator {
        let http = support::free_addr();
        let log = dir.join(format!("operator-{label}.log"));
        let output = std::fs::File::create(&log).unwrap();
        // A profiler to run the operator under, e.g. `heaptrack -o /tmp/sovra`: its words
        // come before the binary (the RSS figures are then the profiler's, not Sovra's).
        let wrapper = std::env::var("SOVRA_BENCH_OPERATOR_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut command = Command::new(program);
                command.args(words).arg(env!("CARGO_BIN_EXE_sovra"));
                command
            }
            None => Command::new(env!("CARGO_BIN_EXE_sovra")),
        };
        let child = command
            .arg("run")
            .args(["--namespace", OPERATOR_NAMESPACE])
            .args(["--http-addr", &http.to_string()])
            .args(["--node-pool-label", support::POOL_LABEL])
            .args(["--leader-election", "false"])
            .args(["--identity", "bench"])
            .arg("--audit-log")
            .arg(dir.join("audit.jsonl"))
            .args(["--audit-stdout", "false"])
            .args(["--concurrency", &CONCURRENCY.to_string()])
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "warn")
            .envs(allocator_env())
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .unwrap();
        let rss = Arc::new(Rss::default());
        let pid = child.id();
        let sampled = rss.clone();
        let sampler = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(100));
            loop {
                every.tick().await;
                match proc_status_kib(pid, "VmRSS:") {
                    Some(kib) => sampled.record(kib),
                    None => return,
                }
            }
        });
        Operator {
            child,
            http,
            rss,
            sampler,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The CPU time the operator process has used since it started, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&self.pid().to_string()).unwrap_or_default()
    }

    /// The process's high-water mark of resident memory, in MiB.
    pub fn hwm_mib(&self) -> f64 {
        mib(proc_status_kib(self.pid(), "VmHWM:").unwrap_or_default())
    }

    /// Fails the bench, with the tail of the operator's log, if the process has exited.
    pub fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "the operator exited ({status}); its log:\n{}",
                self.log_tail()
            );
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The operator's own figure for `name{labels}` from `/metrics`, if it serves it.
    pub async fn metric(&self, name: &str, labels: &str) -> Option<f64> {
        let (code, body) = support::http_get(self.http, "/metrics").await?;
        let wanted = format!("{name}{{{labels}}} ");
        let line = body
            .lines()
            .find(|l| l.starts_with(&wanted))
            .filter(|_| code == 200)?;
        line.rsplit(' ').next()?.parse().ok()
    }

    /// The workload reconciles the operator has run (`sovra_reconciliations_total`).
    pub async fn workload_reconciles(&self) -> f64 {
        self.metric("sovra_reconciliations_total", WORKLOAD_CONTROLLER)
            .await
            .unwrap_or_default()
    }

    /// How many workload reconciles have ended, and their time in seconds
    /// (`sovra_reconcile_duration_seconds`).
    pub async fn workload_reconcile_time(&self) -> Option<(f64, f64)> {
        let count = self
            .metric(
                "sovra_reconcile_duration_seconds_count",
                WORKLOAD_CONTROLLER,
            )
            .await?;
        let sum = self
            .metric("sovra_reconcile_duration_seconds_sum", WORKLOAD_CONTROLLER)
            .await?;
        Some((count, sum))
    }

    pub async fn ready(&self) -> bool {
        ready(self.http).await
    }

    /// SIGTERM, then SIGKILL if it has not stopped within 30 s: a stop as at a rollout.
    pub async fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!("  (the operator did not stop within 30 s of SIGTERM: killed)");
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.sampler.abort();
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
