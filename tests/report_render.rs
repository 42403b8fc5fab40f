//! The report page in a real browser: Debian's `chromium` (installed by `make tools`) renders
//! the scenario's page headless, without a console message (the page has no script, and its
//! Content-Security-Policy makes the browser log any external load it refuses), shows its key
//! figures in the DOM, and takes a screenshot.
//!
//! Without chromium every test prints `skipped:` with the reason and passes. The screenshot
//! and the page are written to `$CARGO_TARGET_TMPDIR/report-render/`; with `SOVRA_UPDATE_SCREENSHOT=1` it is
//! also copied to `docs/report.png`, the README's picture.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod report_scenario;

use report_scenario::{example_clusters, sovra_report_in, write_trail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(90);
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 2000;

/// The browser: `$SOVRA_CHROMIUM`, else `chromium` on `PATH`; `None` (with the reason
/// printed) when there is none.
fn chromium(test: &str) -> Option<PathBuf> {
    let candidate =
        std::env::var_os("SOVRA_CHROMIUM").map_or_else(|| PathBuf::from("chromium"), PathBuf::from);
    let runs = Command::new(&candidate)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if runs {
        Some(candidate)
    } else {
        println!(
            "{test}: skipped: {} is not installed (`make tools` installs Debian's chromium; or set SOVRA_CHROMIUM)",
            candidate.display()
        );
        None
    }
}

/// What one headless run printed.
struct Run {
    stdout: String,
    stderr: String,
}

impl Run {
    /// The page's console messages: chromium logs each as `...:INFO:CONSOLE:1] "text", source: ...`
    /// (`CONSOLE(1)` in older versions) with `--enable-logging=stderr`.
    fn console(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
            .collect()
    }
}

/// Runs chromium headless on `page` with `extra` arguments, bounded in time.
fn headless(browser: &Path, profile: &Path, page: &Path, extra: &[String]) -> Run {
    let out = profile.with_extension("out");
    let err = profile.with_extension("err");
    let mut child = Command::new(browser)
        .args([
            "--headless=new",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > CHROMIUM_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish within {CHROMIUM_TIMEOUT:?} on {}",
                page.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let run = Run {
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
    };
    assert!(
        status.success(),
        "chromium failed ({status}):\n{}",
        run.stderr
    );
    run
}

/// The DOM's text without tags, as a reader sees it.
fn text(dom: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in dom.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

/// Writes the scenario's report page in `lang` into `dir`.
async fn scenario_page(dir: &Path, lang: &str) -> PathBuf {
    write_trail(dir).await;
    let page = dir.join(format!("report-{lang}.html"));
    let clusters = example_clusters();
    // The trail by its name only, as an auditor given the file would name it.
    let output = sovra_report_in(
        dir,
        &[
            "--audit-log",
            "audit.jsonl",
            "--clusters",
            clusters.to_str().unwrap(),
            "--lang",
            lang,
            "-o",
            page.to_str().unwrap(),
        ],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    page
}

#[test]
fn the_console_check_catches_a_page_that_logs_an_error_or_loads_something_external() {
    let Some(browser) = chromium("the_console_check_catches_a_page_that_logs_an_error") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("bad.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><p>x</p><script>console.error('boom'); missing();</script></body></html>",
    )
    .unwrap();
    let run = headless(
        &browser,
        &dir.path().join("profile"),
        &page,
        &["--dump-dom".into()],
    );
    let console = run.console();
    assert!(
        console.iter().any(|l| l.contains("boom")),
        "console.error not seen:\n{}",
        run.stderr
    );
    assert!(
        console.iter().any(|l| l.contains("Uncaught")),
        "uncaught error not seen:\n{}",
        run.stderr
    );

    // Under the report's policy an external image is refused, and the refusal is logged.
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'\"></head><body><img src=\"https://example.invalid/x.png\"></body></html>",
    )
    .unwrap();
    let run = headless(
        &browser,
        &dir.path().join("profile2"),
        &page,
        &["--dump-dom".into()],
    );
    assert!(
        !run.console().is_empty(),
        "CSP refusal not seen:\n{}",
        run.stderr
    );
}

#[tokio::test]
async fn the_report_renders_in_chromium_without_console_errors_and_shows_its_key_figures() {
    let Some(browser) = chromium("the_report_renders_in_chromium") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = scenario_page(dir.path(), "en").await;

    let dom = headless(
        &browser,
        &dir.path().join("profile-dom"),
        &page,
        &["--dump-dom".into()],
    );
    assert!(
        dom.console().is_empty(),
        "console messages: {:?}",
        dom.console()
    );
    let shown = text(&dom.stdout);
    for figure in [
        "Placed: 5",
        "Moved: 1",
        "Refused: 2",
        "Violation: 2",
        "Sovereignty lost: 1",
        "Released: 1",
        "Workloads placed: 4",
        "Placements: 5",
        "Workloads refused: 1",
        "Chain intact",
        "Records verified: 12",
        "No checkpoint in the trail.",
        "ministry-bzk/case-management (internal) — runs on rijkscloud-nl, stackit-de",
    ] {
        assert!(
            shown.contains(figure),
            "the rendered page lacks {figure:?}:\n{shown}"
        );
    }
    assert!(
        dom.stdout.matches("<svg").count() >= 6,
        "charts are inline SVG"
    );

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-render");
    std::fs::create_dir_all(&shots).unwrap();
    let png = shots.join("report.png");
    let _ = std::fs::remove_file(&png);
    let shot = headless(
        &browser,
        &dir.path().join("profile-shot"),
        &page,
        &[
            format!("--screenshot={}", png.display()),
            format!("--window-size={WIDTH},{HEIGHT}"),
            "--hide-scrollbars".into(),
        ],
    );
    assert!(
        shot.console().is_empty(),
        "console messages: {:?}",
        shot.console()
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(png_size(&bytes), (WIDTH, HEIGHT));
    assert!(
        bytes.len() > 40_000,
        "a {}-byte screenshot is too plain to hold the report",
        bytes.len()
    );
    std::fs::copy(&page, shots.join("report.html")).unwrap();
    println!(
        "screenshot: {} (page: report.html beside it)",
        png.display()
    );
    if std::env::var_os("SOVRA_UPDATE_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/report.png");
        std::fs::copy(&png, &docs).unwrap();
        println!("copied to {}", docs.display());
    }
}

#[tokio::test]
async fn the_dutch_report_renders_with_dutch_headings() {
    let Some(browser) = chromium("the_dutch_report_renders_with_dutch_headings") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = scenario_page(dir.path(), "nl").await;
    let dom = headless(
        &browser,
        &dir.path().join("profile"),
        &page,
        &["--dump-dom".into()],
    );
    assert!(
        dom.console().is_empty(),
        "console messages: {:?}",
        dom.console()
    );
    let shown = text(&dom.stdout);
    for heading in [
        "Sovra plaatsingsrapport",
        "Controle van de keten",
        "Plaatsingen aan het eind van de periode",
        "Weigeringen en hun redenen",
        "Overtredingen en verlies van soevereiniteit in de tijd",
        "Vastzittende en exit-gereede workloads",
        "Besluiten per workload",
        "Geplaatst: 5",
        "Geweigerd: 2",
    ] {
        assert!(shown.contains(heading), "the Dutch page lacks {heading:?}");
    }
}
