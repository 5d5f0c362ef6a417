//! The trial report as a reader sees it: a real trial's page rendered in
//! headless Chromium (the Debian `chromium` that scripts/install-deps
//! installs), its DOM and a screenshot checked, and every request the page
//! could make caught by a proxy that must see none.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The charts every report of herd's hub carries, by figure id.
const CHARTS: [&str; 6] = ["throughput", "latency", "slots", "hub", "cpu", "memory"];

/// Finds Chromium: `$CHROMIUM`, else `chromium` or `chromium-browser` on
/// PATH. Panics with the way to get it when there is none.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let paths = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&paths) {
        for name in ["chromium", "chromium-browser"] {
            if dir.join(name).is_file() {
                return dir.join(name);
            }
        }
    }
    panic!("chromium not found on PATH; run scripts/install-deps (Debian package chromium) or set CHROMIUM");
}

/// Headless Chromium with a profile of its own and nothing running in the
/// background; `args` follow.
fn headless(profile: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .stdin(Stdio::null());
    let out = cmd.output().expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a small trial with a kept work directory; its report is the
/// default one, `DIR/report.html`.
fn small_trial_report(dir: &Path) -> PathBuf {
    let out = crate::helpers::herd_command()
        .args(["run", "--agents", "4", "--tasks", "5", "--timeout", "120"])
        .args(["--min-think-ms", "20", "--max-think-ms", "60"])
        .arg("--workdir")
        .arg(dir)
        .output()
        .expect("run herd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "herd failed: {stderr}");
    let page = dir.join("report.html");
    assert!(
        stderr.contains(&format!("report written to {}", page.display())),
        "{stderr}"
    );
    page
}

/// The SVG element of one figure in a DOM dump.
fn figure<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("<figure id=\"{id}\">"))
        .unwrap_or_else(|| panic!("figure {id} missing from the rendered page"));
    let end = start + dom[start..].find("</figure>").expect("figure closed");
    &dom[start..end]
}

#[test]
fn a_trial_report_renders_every_chart_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let page = small_trial_report(&dir.path().join("trial"));
    let size = std::fs::metadata(&page).unwrap().len();
    assert!(
        size > 10_000,
        "a page of {size} bytes cannot hold the charts"
    );

    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.display());
    let dom = headless(profile.path(), &["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("Passed: every check held."), "the verdict");
    for id in CHARTS {
        let chart = figure(&dom, id);
        assert_eq!(chart.matches("<svg").count(), 1, "chart {id}");
        assert!(chart.contains("<figcaption>"), "chart {id} is explained");
    }
    // Real data: a point per commit (4 × 5), a claim, think and commit bar
    // per task, a line per sampled series.
    assert_eq!(figure(&dom, "latency").matches("<circle").count(), 20);
    assert!(figure(&dom, "slots").matches("<rect").count() >= 3 * 20);
    for id in ["throughput", "hub", "cpu", "memory"] {
        assert!(
            figure(&dom, id).contains("<polyline"),
            "chart {id} has a line"
        );
    }
    for name in ["hub", "leaf-agents", "nats-server", "herd"] {
        assert!(
            figure(&dom, "cpu").contains(&format!("{name}\n")),
            "{name} in the CPU legend"
        );
    }

    // The screenshot: not blank, and the charts' colours are on it.
    let shot = profile.path().join("report.png");
    headless(
        profile.path(),
        &[
            "--window-size=1200,4400",
            &format!("--screenshot={}", shot.display()),
            &url,
        ],
    );
    let (width, height, pixels) = decode_png(&shot);
    assert_eq!((width, height), (1200, 4400));
    let non_white = pixels.iter().filter(|p| **p != [255, 255, 255]).count();
    let share = non_white as f64 / pixels.len() as f64;
    assert!(
        share > 0.03,
        "the page is nearly blank: {share:.4} non-white"
    );
    // The commit bars' blue and the think bars' grey of the slot timeline.
    for (name, colour) in [("blue", [0x00, 0x72, 0xB2]), ("grey", [0xD6, 0xD6, 0xD6])] {
        let count = pixels.iter().filter(|p| **p == colour).count();
        assert!(count > 500, "{name} ({colour:?}) is on {count} pixels only");
    }
}

/// Decodes an RGB or RGBA PNG into its size and RGB pixels.
fn decode_png(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).expect("the screenshot"));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    let pixels = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, pixels)
}

/// Hosts of Chromium's own background services (time, updates, sign-in):
/// Chromium asks them whatever page it loads, so they say nothing about
/// the page.
const BROWSER_SERVICES: [&str; 3] = [".google.com", ".googleapis.com", ".gvt1.com"];

/// The host a proxy request names: `GET http://host:port/path` or
/// `CONNECT host:port`.
fn request_host(head: &str) -> String {
    let target = head.split_whitespace().nth(1).unwrap_or_default();
    let target = target.split("://").last().unwrap_or_default();
    let authority = target.split('/').next().unwrap_or_default();
    authority.split(':').next().unwrap_or_default().to_string()
}

/// Loads `page` in Chromium with every request sent to a proxy on
/// loopback; returns the request lines the page caused (Chromium's own
/// service requests left out).
fn requests_made(page: &Path) -> Vec<String> {
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = proxy.local_addr().unwrap().port();
    proxy.set_nonblocking(true).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (log, stopped) = (Arc::clone(&seen), Arc::clone(&stop));
    let watcher = std::thread::spawn(move || {
        while !stopped.load(Ordering::SeqCst) {
            match proxy.accept() {
                Ok((mut conn, _)) => {
                    // Read the request head and drop the connection: the
                    // page gets nothing.
                    let _ = conn.set_nonblocking(false);
                    let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
                    let mut head = [0u8; 1024];
                    let n = conn.read(&mut head).unwrap_or(0);
                    let text = String::from_utf8_lossy(&head[..n]);
                    let line = text.lines().next().unwrap_or("(no request line)");
                    log.lock().unwrap().push(line.to_string());
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    let profile = tempfile::tempdir().unwrap();
    headless(
        profile.path(),
        &[
            &format!("--proxy-server=http://127.0.0.1:{port}"),
            // Loopback too goes through the proxy.
            "--proxy-bypass-list=<-loopback>",
            "--virtual-time-budget=3000",
            "--dump-dom",
            &format!("file://{}", page.display()),
        ],
    );
    stop.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    let seen = seen.lock().unwrap().clone();
    seen.into_iter()
        .filter(|line| {
            let host = request_host(line);
            !BROWSER_SERVICES.iter().any(|s| host.ends_with(s))
        })
        .collect()
}

#[test]
fn a_trial_report_makes_no_network_request() {
    let dir = tempfile::tempdir().unwrap();
    let page = small_trial_report(&dir.path().join("trial"));
    let requests = requests_made(&page);
    assert!(
        requests.is_empty(),
        "the report reached for the network: {requests:?}"
    );
    // Nor could it: nothing in it names a resource to load.
    let html = std::fs::read_to_string(&page).unwrap();
    for pattern in [
        "<script", "<link", "<img", "src=", "href=", "url(", "@import",
    ] {
        assert!(!html.contains(pattern), "the page holds {pattern:?}");
    }

    // The same watch catches a page that does reach out.
    let leaky = dir.path().join("leaky.html");
    std::fs::write(
        &leaky,
        "<html><body><img src=\"http://127.0.0.1:8123/chart.png\"></body></html>",
    )
    .unwrap();
    let requests = requests_made(&leaky);
    assert!(
        requests
            .iter()
            .any(|r| r.contains("127.0.0.1:8123/chart.png")),
        "the proxy missed the page's request: {requests:?}"
    );
}
