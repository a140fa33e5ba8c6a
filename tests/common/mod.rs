//! Helpers for end-to-end tests: run the built `scen` binary, read its reports, ask etcdctl.

#![allow(dead_code)]

pub mod prometheus;
pub mod shipped;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture path.
pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

/// A `scen` command.
pub fn scen() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scen"));
    c.current_dir(root())
        .env("NO_COLOR", "1")
        .env_remove("SCEN_ENDPOINTS");
    c
}

/// The result of one `scen run`.
pub struct Run {
    pub code: i32,
    pub stderr: String,
    pub stdout: String,
    pub report: Option<Value>,
    pub junit: Option<String>,
    pub markdown: Option<String>,
    pub dir: tempfile::TempDir,
}

/// Runs `scen run FILE ARGS...` writing all four reports (JSON, JUnit, Markdown, HTML) into a
/// temp dir (the HTML as `r.html`, for [`assert_page_renders`]).
pub fn run(file: &Path, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (json, xml, md) = (
        dir.path().join("r.json"),
        dir.path().join("j.xml"),
        dir.path().join("s.md"),
    );
    let out: Output = scen()
        .arg("run")
        .arg(file)
        .args([
            "--report",
            json.to_str().unwrap(),
            "--junit",
            xml.to_str().unwrap(),
            "--markdown",
            md.to_str().unwrap(),
            "--html",
            dir.path().join("r.html").to_str().unwrap(),
        ])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // No task of a run panics, not even one whose panic the runtime swallows (a progress line
    // reading a book emptied under it did).
    assert!(
        !stderr.contains("panicked at"),
        "scen run {} panicked:\n{stderr}",
        file.display()
    );
    Run {
        code: out.status.code().unwrap_or(-1),
        stderr,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        report: std::fs::read_to_string(&json)
            .ok()
            .map(|t| serde_json::from_str(&t).unwrap()),
        junit: std::fs::read_to_string(&xml).ok(),
        markdown: std::fs::read_to_string(&md).ok(),
        dir,
    }
}

/// Validates a report against docs/report.schema.json.
pub fn assert_schema_valid(report: &Value) {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("docs/report.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(report)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "report does not match the schema: {errors:#?}"
    );
}

/// A step of the report by name.
pub fn step<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name}"))
}

/// A threshold of the report by expression.
pub fn threshold<'a>(report: &'a Value, expr: &str) -> &'a Value {
    report["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["expression"] == expr)
        .unwrap_or_else(|| panic!("no threshold {expr}"))
}

/// `etcdctl --endpoints URL ARGS...`, stdout.
pub fn etcdctl(url: &str, args: &[&str]) -> String {
    let out = Command::new("etcdctl")
        .arg(format!("--endpoints={url}"))
        .args(args)
        .output()
        .expect("etcdctl runs");
    assert!(
        out.status.success(),
        "etcdctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A throwaway etcd that plays "someone else's cluster" for --endpoints tests.
pub fn external_etcd(rt: &tokio::runtime::Runtime) -> scen_engine::embedded::EmbeddedEtcd {
    rt.block_on(scen_engine::embedded::EmbeddedEtcd::start(
        &Default::default(),
    ))
    .expect("etcd starts")
}

/// A runtime, an external etcd on it and its client URL: the start of every `--endpoints` test.
/// Bind all three (`let (rt, etcd, url) = external();`): the etcd drops before its runtime.
pub fn external() -> (
    tokio::runtime::Runtime,
    scen_engine::embedded::EmbeddedEtcd,
    String,
) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let etcd = external_etcd(&rt);
    let url = etcd.client_url().to_string();
    (rt, etcd, url)
}

/// Starts `scen run FILE --report JSON -q` in the background.
pub fn spawn_run(file: &Path, json: &Path, stderr: std::process::Stdio) -> std::process::Child {
    scen()
        .arg("run")
        .arg(file)
        .arg("--report")
        .arg(json)
        .arg("-q")
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// A `scen run` in the background whose stderr a test waits on, line by line: an event (a step
/// started, a load's first progress line), never a sleep. Not `-q`: the plain progress lines
/// (stderr is not a terminal) are the events.
pub struct Watched {
    /// The scen process.
    pub child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every line read so far.
    pub seen: Vec<String>,
}

/// Starts `scen run FILE --report JSON ARGS...`, its stderr watched.
pub fn spawn_watched(file: &Path, json: &Path, args: &[&str]) -> Watched {
    use std::io::BufRead;
    let mut child = scen()
        .arg("run")
        .arg(file)
        .arg("--report")
        .arg(json)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Watched {
        child,
        lines,
        seen: Vec::new(),
    }
}

impl Watched {
    /// Waits for a stderr line containing every one of `texts` (at most `limit`); panics with
    /// every line seen when none came, or when scen ended first.
    pub fn wait_for(&mut self, texts: &[&str], limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = texts.iter().all(|t| line.contains(t));
                    self.seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(e) => panic!(
                    "no line with {texts:?} ({e:?}); scen said:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for scen to exit: its exit code and the whole of its stderr.
    pub fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().unwrap();
        // The reader thread ends at EOF, when scen (and every child holding the pipe) is gone.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(30)) {
            self.seen.push(line);
        }
        (status.code(), self.seen.join("\n"))
    }
}

/// The etcd members among `pid`'s children (of any of its threads: scen spawns members from
/// one spawner thread); not the short-lived `etcd --version` scen runs to check the binary.
pub fn etcd_children(pid: u32) -> Vec<u32> {
    children_where(pid, |comm, cmdline| {
        comm == "etcd" && cmdline.contains("--name=")
    })
    .into_iter()
    .map(|(k, _)| k)
    .collect()
}

/// The children of `pid` (any of its threads') whose `comm` and command line `keep` accepts,
/// with their `comm`.
pub fn children_where(pid: u32, keep: impl Fn(&str, &str) -> bool) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        for k in kids
            .split_whitespace()
            .filter_map(|k| k.parse::<u32>().ok())
        {
            let comm = std::fs::read_to_string(format!("/proc/{k}/comm")).unwrap_or_default();
            let cmdline = std::fs::read_to_string(format!("/proc/{k}/cmdline")).unwrap_or_default();
            if keep(comm.trim(), &cmdline) {
                out.push((k, comm.trim().to_string()));
            }
        }
    }
    out
}

/// Waits up to 10 s for every process in `pids` to be gone; false if one is still there.
pub fn gone(pids: &[u32]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| alive(*p)) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Whether a process exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

/// `scen ARGS...`, which must succeed; its output.
pub fn scen_ok<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    let out = scen().args(args).output().expect("scen runs");
    assert!(
        out.status.success(),
        "scen {:?}: {}",
        args.iter()
            .map(|a| a.as_ref().to_owned())
            .collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs headless Chromium (Debian's, installed by scripts/setup.sh) on `page` with `args`;
/// returns (success, stdout, stderr). Console messages are logged to stderr as CONSOLE lines.
pub fn chromium(page: &Path, profile: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs (scripts/setup.sh installs Debian's chromium)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Measures a page as the browser laid it out, appended to its end: every chart label's box
/// (timeline step labels, mark labels), every axis label, every `data-path`; written into a
/// `<pre id="scen-check">` as JSON for the dumped DOM.
const LAYOUT_CHECK: &str = r#"<script>(function () {
  var out = { overlaps: [], clipped: [], axes: [], charts: 0, paths: [] };
  document.querySelectorAll("svg").forEach(function (svg) {
    var r = svg.getBoundingClientRect();
    if (r.width === 0) { return; }
    out.charts += 1;
    var labels = Array.prototype.slice.call(svg.querySelectorAll("text.bl, text.mk"));
    var boxes = labels.map(function (t) { return t.getBoundingClientRect(); });
    for (var i = 0; i < boxes.length; i++) {
      var a = boxes[i];
      if (a.width === 0) { continue; }
      if (a.left < r.left - 0.5 || a.right > r.right + 0.5) { out.clipped.push(labels[i].textContent); }
      for (var j = i + 1; j < boxes.length; j++) {
        var b = boxes[j];
        if (b.width > 0 && a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5) {
          out.overlaps.push(labels[i].textContent + " / " + labels[j].textContent);
        }
      }
    }
    svg.querySelectorAll("text.ax").forEach(function (t) { out.axes.push(t.textContent); });
  });
  document.querySelectorAll("[data-path]").forEach(function (e) { out.paths.push(e.getAttribute("data-path")); });
  var pre = document.createElement("pre");
  pre.id = "scen-check";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();</script>"#;

/// What [`LAYOUT_CHECK`] measured on a page.
pub struct Layout {
    /// Pairs of chart labels whose boxes intersect.
    pub overlaps: Vec<String>,
    /// Labels that reach past their chart's edge.
    pub clipped: Vec<String>,
    /// Every axis label.
    pub axes: Vec<String>,
    /// Charts laid out.
    pub charts: u64,
    /// Every `data-path` on the page.
    pub paths: std::collections::BTreeSet<String>,
}

/// Lays `page` out in headless Chromium and measures it ([`LAYOUT_CHECK`]); also returns the
/// browser's stderr (console messages).
pub fn layout(page: &Path, profile: &Path) -> (Layout, String) {
    let html = std::fs::read_to_string(page).unwrap();
    let checked = page.with_extension("check.html");
    std::fs::write(
        &checked,
        html.replace("</body>", &format!("{LAYOUT_CHECK}</body>")),
    )
    .unwrap();
    let (ok, dom, stderr) = chromium(&checked, profile, &["--dump-dom"]);
    assert!(ok, "chromium failed: {stderr}");
    let json = dom
        .split_once("<pre id=\"scen-check\">")
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(j, _)| {
            j.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
        })
        .unwrap_or_else(|| panic!("the layout check ran: {stderr}"));
    let v: Value = serde_json::from_str(&json).unwrap();
    let strings = |k: &str| -> Vec<String> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    (
        Layout {
            overlaps: strings("overlaps"),
            clipped: strings("clipped"),
            axes: strings("axes"),
            charts: v["charts"].as_u64().unwrap(),
            paths: strings("paths").into_iter().collect(),
        },
        stderr,
    )
}

/// Whether an axis label names its unit.
pub fn has_unit(label: &str) -> bool {
    ["ms", "seconds", "per second", "MiB", "%", "/s", "bytes"]
        .iter()
        .any(|u| label.contains(u))
}

/// The run's HTML report loads in headless Chromium with no console message, its verdict banner,
/// a timeline and every step's section in the DOM; laid out, no two chart labels overlap, none
/// is clipped, and every axis says its unit.
pub fn assert_page_renders(r: &Run) {
    let page = r.dir.path().join("r.html");
    let (l, _) = layout(&page, &r.dir.path().join("chromium-layout"));
    assert!(l.overlaps.is_empty(), "labels overlap: {:?}", l.overlaps);
    assert!(l.clipped.is_empty(), "labels clipped: {:?}", l.clipped);
    let unitless: Vec<&String> = l.axes.iter().filter(|a| !has_unit(a)).collect();
    assert!(unitless.is_empty(), "axes without a unit: {unitless:?}");
    let (ok, dom, stderr) = chromium(&page, &r.dir.path().join("chromium"), &["--dump-dom"]);
    assert!(ok, "chromium failed: {stderr}");
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    assert!(dom.contains("class=\"banner "), "no verdict banner");
    let report = r.report.as_ref().expect("a report");
    if report["steps"]
        .as_array()
        .is_some_and(|s| s.iter().any(|s| s["started_at"].is_string()))
    {
        assert!(dom.contains("chart wide timeline"), "no timeline");
    }
    for s in report["steps"].as_array().into_iter().flatten() {
        let id = format!("id=\"step-{}\"", s["name"].as_str().unwrap());
        assert!(dom.contains(&id), "no section for step {}", s["name"]);
    }
}

/// An HTML page scen wrote, parsed as the well-formed markup it must be.
pub fn html_doc(text: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse_with_options(
        text,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .expect("the page is well-formed markup")
}
