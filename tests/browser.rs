//! The HTML report in a real browser: headless Chromium (Debian's `chromium`, installed by
//! scripts/setup.sh) loads a report scen wrote, renders it, and logs no console message.

mod common;

use common::*;

#[test]
fn chromium_renders_the_html_report_without_console_messages() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    scen_ok(&[
        "run".as_ref(),
        fixture("html.rhai").as_os_str(),
        "-q".as_ref(),
        "--html".as_ref(),
        html.as_os_str(),
    ]);

    // The DOM the browser built: the page parsed, with its charts.
    let (ok, dom, stderr) = chromium(&html, &dir.path().join("p1"), &["--dump-dom"]);
    assert!(ok, "{stderr}");
    assert!(dom.contains("PASSED — html"), "{dom}");
    assert!(dom.matches("<svg").count() >= 3, "charts in the DOM");
    // Console messages (a failed fetch, a script error) are logged as CONSOLE lines.
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");

    // And it paints: a screenshot of a real size.
    let shot = dir.path().join("shot.png");
    let (ok, _, stderr) = chromium(
        &html,
        &dir.path().join("p2"),
        &[
            "--window-size=1200,1600",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    assert!(ok, "{stderr}");
    let png = std::fs::read(&shot).expect("a screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 20_000, "not a blank page: {} bytes", png.len());
}
