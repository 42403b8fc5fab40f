//! The closing block: every figure of the run next to its goal (issue 14).

use std::time::Duration;

#[derive(Default)]
pub struct Figures {
    pub workloads: usize,
    pub startup: Duration,
    /// From operator start until `/readyz` said its caches were synced.
    pub synced: Option<Duration>,
    pub startup_peak_mib: f64,
    /// CPU seconds during start-up: the operator's, and the bench process's (its servers).
    pub startup_operator_cpu: f64,
    pub startup_servers_cpu: f64,
    pub edits: usize,
    pub edits_unhandled: usize,
    pub edit_p50: Option<Duration>,
    pub edit_p99: Option<Duration>,
    pub writes_per_placement: f64,
    /// NoExitAlternative Events per placement: one per workload no other provider could host.
    pub exit_warnings_per_placement: f64,
    pub retries: usize,
    pub writes_per_readiness: f64,
    pub steady_mib: f64,
    pub idle_window: Duration,
    pub idle_writes: usize,
    pub relist_peak_mib: f64,
    pub relist_settled: Duration,
    pub relist_writes: usize,
    pub restart_synced: Option<Duration>,
    pub restart_reconciled: Option<Duration>,
    pub restart_writes: usize,
    pub replay: Duration,
    pub replay_requests: usize,
    /// Writes among the replayed requests.
    pub replay_writes: usize,
    /// CPU seconds of the bench process (its servers and the replay's client) during the replay.
    pub replay_cpu: f64,
    pub hwm_mib: f64,
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "n/a".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()))
}

fn row(figure: &str, value: String, goal: &str) {
    if goal.is_empty() {
        println!("  {figure:<48} {value:>16}");
    } else {
        println!("  {figure:<48} {value:>16}   goal {goal}");
    }
}

impl Figures {
    pub fn print(&self) {
        let n = self.workloads;
        let per_second = n as f64 / self.startup.as_secs_f64();
        let ratio = self.startup.as_secs_f64() / self.replay.as_secs_f64();
        println!();
        println!("summary ({n} workloads, 10 members, 1,000 nodes in 100 pools):");
        row(
            "start-up: operator start to all Placed",
            secs(Some(self.startup)),
            "≤ 60 s at 10k",
        );
        row(
            "  workloads placed per second",
            format!("{per_second:.0}/s"),
            "",
        );
        row(
            "  of which until caches synced (/readyz)",
            secs(self.synced),
            "",
        );
        row(
            "  operator CPU during start-up",
            format!(
                "{:.2} s ({:.0} µs per workload)",
                self.startup_operator_cpu,
                self.startup_operator_cpu * 1e6 / n.max(1) as f64
            ),
            "",
        );
        row(
            "  servers' CPU during start-up (bench process)",
            format!("{:.2} s", self.startup_servers_cpu),
            "",
        );
        row(
            &format!("edit during the backlog, p50 ({} edits)", self.edits),
            secs(self.edit_p50),
            "",
        );
        row("edit during the backlog, p99", secs(self.edit_p99), "≤ 5 s");
        if self.edits_unhandled > 0 {
            row(
                "  edits never handled",
                self.edits_unhandled.to_string(),
                "0",
            );
        }
        row(
            "writes per first placement",
            format!("{:.2}", self.writes_per_placement),
            "4.0",
        );
        row(
            "  of which NoExitAlternative (stranded workloads)",
            format!("{:.2}", self.exit_warnings_per_placement),
            "",
        );
        row(
            "  without them: the floor's four writes",
            format!(
                "{:.2}",
                self.writes_per_placement - self.exit_warnings_per_placement
            ),
            "4.0",
        );
        row(
            "retries (409/422) during start-up",
            self.retries.to_string(),
            "0",
        );
        row(
            "writes per readiness change",
            format!("{:.2}", self.writes_per_readiness),
            "1",
        );
        row(
            &format!("writes in {:.0} s idle", self.idle_window.as_secs_f64()),
            self.idle_writes.to_string(),
            "0",
        );
        row(
            "writes per resync that changes nothing (relist)",
            format!("{:.2}", self.relist_writes as f64 / n as f64),
            "0",
        );
        row(
            "RSS steady",
            format!("{:.1} MiB", self.steady_mib),
            "≤ 64 MiB at 10k",
        );
        row(
            "RSS peak during start-up",
            format!("{:.1} MiB", self.startup_peak_mib),
            "",
        );
        row(
            "RSS peak during a relist of every watch",
            format!("{:.1} MiB", self.relist_peak_mib),
            "",
        );
        row(
            "  relist peak / steady",
            format!("{:.2}x", self.relist_peak_mib / self.steady_mib),
            "≤ 2x",
        );
        row(
            "  relist settled after",
            secs(Some(self.relist_settled)),
            "",
        );
        row(
            "restart with all placed: synced",
            secs(self.restart_synced),
            "",
        );
        row(
            "restart: every workload reconciled",
            secs(self.restart_reconciled),
            "",
        );
        row("restart: writes", self.restart_writes.to_string(), "0");
        row(
            &format!(
                "raw replay of start-up's {} requests ({} writes)",
                self.replay_requests, self.replay_writes
            ),
            secs(Some(self.replay)),
            "",
        );
        row(
            "  servers' and client's CPU during the replay",
            format!("{:.2} s", self.replay_cpu),
            "",
        );
        row("start-up / raw replay", format!("{ratio:.2}x"), "≤ 1.25x");
        row(
            "operator VmHWM (whole first process)",
            format!("{:.1} MiB", self.hwm_mib),
            "",
        );
    }
}
