//! Child processes (etcd, kube-apiserver, openssl) that are killed and reaped when dropped, on a
//! panic too; their output goes to a log file whose tail is printed when a test fails.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
    /// The output was already shown in a panic message.
    reported: bool,
}

impl Process {
    /// Starts `binary` with `args`; stdout and stderr both go to `log`.
    pub fn spawn(name: &str, binary: &Path, args: &[String], log: &Path) -> Process {
        let out =
            File::create(log).unwrap_or_else(|e| panic!("{name}: create {}: {e}", log.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("{name}: log file: {e}"));
        let child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({}): {e}", binary.display()));
        Process {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
            reported: false,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// The last `lines` lines of the process's output.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Panics with `what` and the tail of the log when the process has ended.
    pub fn assert_running(&mut self, what: &str) {
        if self.exited().is_some() {
            self.fail(what, "");
        }
    }

    /// Panics: the process ended, or `what` did not happen within [`super::WAIT`]; with
    /// `hint` and the tail of the process's output (which its drop then does not repeat).
    pub fn fail(&mut self, what: &str, hint: &str) -> ! {
        let state = match self.exited() {
            Some(status) => format!("{} exited ({status}) while waiting for", self.name),
            None => format!("timed out after {:?} waiting for:", super::WAIT),
        };
        self.reported = true;
        panic!(
            "{state} {what}{hint}\nlast lines of the output of {}:\n{}",
            self.name,
            self.log_tail(40)
        );
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn stop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

thread_local! {
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// On this thread, a panic no longer prints the processes' output (for a deliberate panic).
pub fn quiet_on_panic() {
    QUIET.with(|q| q.set(true));
}

impl Drop for Process {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.reported && !QUIET.with(std::cell::Cell::get) {
            say(&format!(
                "--- last lines of {} ({}) ---\n{}\n--- end of {} ---",
                self.name,
                self.log.display(),
                self.log_tail(30),
                self.name
            ));
        }
        self.stop();
    }
}

/// Writes a line straight to the process's stderr. libtest captures `print!`/`eprint!` of
/// passing tests, so skips and progress would otherwise not be seen.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A port nothing listens on right now (the envtest way: bind to :0 and let go).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// A plain HTTP/1.0 request to `addr` (loopback, short timeouts): the status and the body.
pub fn http(addr: &str, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let socket = addr
        .parse()
        .map_err(|e| std::io::Error::other(format!("{addr}: {e}")))?;
    let mut stream = TcpStream::connect_timeout(&socket, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:?}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Runs a command to completion, killing it after `timeout`; returns its status and output.
pub fn run(what: &str, command: &mut Command, timeout: Duration) -> (ExitStatus, String, String) {
    let out = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{what}: {e}"));
    let err = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(out.reopen().unwrap_or_else(|e| panic!("{what}: {e}")))
        .stderr(err.reopen().unwrap_or_else(|e| panic!("{what}: {e}")))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read =
        |file: &tempfile::NamedTempFile| std::fs::read_to_string(file.path()).unwrap_or_default();
    (status, read(&out), read(&err))
}

/// Whether `path` is an executable file.
pub fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `name` in a directory of `PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| executable(p))
}
