//! End-to-end: connecting like etcdctl — TLS with client certificates, and etcd authentication.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use scen_engine::embedded::{EmbeddedConfig, EmbeddedEtcd, ServerTls};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA.
/// A self-signed CA certificate `name.crt` with its key `name.key`.
fn self_signed(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

fn mint_certs(dir: &Path) {
    self_signed(dir, "ca");
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for who in ["server", "client"] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={who}"),
                "-keyout",
                &format!("{who}.key"),
                "-out",
                &format!("{who}.csr"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{who}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                &format!("{who}.ext"),
                "-out",
                &format!("{who}.crt"),
            ],
        );
    }
}

#[test]
fn tls_with_client_certificates() {
    let certs = tempfile::tempdir().unwrap();
    let d = certs.path();
    mint_certs(d);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cfg = EmbeddedConfig {
        client_tls: Some(ServerTls {
            cert: d.join("server.crt"),
            key: d.join("server.key"),
            client_ca: Some(d.join("ca.crt")),
        }),
        ..Default::default()
    };
    let etcd = rt
        .block_on(EmbeddedEtcd::start(&cfg))
        .expect("TLS etcd starts");
    let url = etcd.client_url().to_string();
    assert!(url.starts_with("https://"));
    let endpoint = url.trim_start_matches("https://").to_string(); // scheme added from the TLS flags
    let p = |f: &str| d.join(f).to_str().unwrap().to_string();

    let r = run(
        &fixture("keys.rhai"),
        &[
            "--endpoints",
            &endpoint,
            "--cacert",
            &p("ca.crt"),
            "--cert",
            &p("client.crt"),
            "--key",
            &p("client.key"),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report = r.report.unwrap();
    assert_eq!(report["target"]["endpoints"][0], url);
    assert_eq!(step(&report, "count")["record"]["count"], 26);
    // etcd's own view comes over the same TLS, with no --metrics-urls: scraped, with figures.
    let server = &step(&report, "count")["record"]["server"];
    assert!(server["no_data"].is_null(), "{server}");
    assert_eq!(server["members"], 1, "{server}");
    assert!(server["db_size"].as_f64().unwrap() > 0.0, "{server}");

    // Without a client certificate the server refuses us: an infrastructure error that says so.
    let r = run(
        &fixture("keys.rhai"),
        &["--endpoints", &endpoint, "--cacert", &p("ca.crt")],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("etcd asks for a client certificate: give --cert and --key"),
        "{}",
        r.stderr
    );
    // Each TLS mistake is named: which side rejected which certificate, or which file is wrong.
    self_signed(d, "stranger");
    openssl(
        d,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=old", "-keyout", "old.key",
            "-out", "old.csr",
        ],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "old.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-days",
            "-1",
            "-extfile",
            "client.ext",
            "-out",
            "old.crt",
        ],
    );
    std::fs::write(d.join("garbage.pem"), "not a certificate\n").unwrap();
    for (cacert, cert, key, code, says) in [
        (
            "stranger.crt",
            "client.crt",
            "client.key",
            3,
            "the server's certificate is not signed by --cacert",
        ),
        (
            "ca.crt",
            "stranger.crt",
            "stranger.key",
            3,
            "etcd rejected our client certificate (--cert): it is not signed by a CA etcd trusts",
        ),
        (
            "ca.crt",
            "old.crt",
            "old.key",
            3,
            "etcd rejected our client certificate (--cert): it has expired",
        ),
        (
            "ca.crt",
            "client.crt",
            "stranger.key",
            2,
            "does not belong to the certificate in --cert",
        ),
        (
            "garbage.pem",
            "client.crt",
            "client.key",
            2,
            "holds no PEM certificate",
        ),
    ] {
        let r = run(
            &fixture("keys.rhai"),
            &[
                "--endpoints",
                &endpoint,
                "--cacert",
                &p(cacert),
                "--cert",
                &p(cert),
                "--key",
                &p(key),
            ],
        );
        assert_eq!(r.code, code, "{cacert} {cert} {key}: {}", r.stderr);
        assert!(
            r.stderr.contains(says),
            "{cacert} {cert} {key}: {}",
            r.stderr
        );
        assert!(
            !r.stderr.contains("transport error") && !r.stderr.contains("MetadataMap"),
            "{}",
            r.stderr
        );
    }
    // --cert without --key is a usage error.
    let r = run(
        &fixture("keys.rhai"),
        &[
            "--endpoints",
            &endpoint,
            "--cacert",
            &p("ca.crt"),
            "--cert",
            &p("client.crt"),
        ],
    );
    assert_eq!(r.code, 2, "a flag mistake is a usage error");
    assert!(
        r.stderr.contains("--cert and --key must be given together"),
        "{}",
        r.stderr
    );
}

#[test]
fn etcd_authentication_with_user() {
    let (_rt, _etcd, url) = external();
    etcdctl(&url, &["user", "add", "root", "--new-user-password=s3cret"]);
    etcdctl(&url, &["auth", "enable"]);

    let r = run(
        &fixture("keys.rhai"),
        &["--endpoints", &url, "--user", "root:s3cret"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.report.unwrap()["target"]["cleaned_up_keys"], 26);

    let r = run(
        &fixture("keys.rhai"),
        &["--endpoints", &url, "--user", "root:wrong"],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot reach etcd") || r.stderr.contains("authentication"),
        "{}",
        r.stderr
    );
}

#[test]
fn tls_flags_with_a_plain_http_endpoint_are_a_usage_error() {
    let out = scen()
        .args([
            "run",
            fixture("keys.rhai").to_str().unwrap(),
            "--endpoints",
            "http://127.0.0.1:2379",
            "--cacert",
            "/etc/hostname",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is plain http") && err.contains("https://"),
        "{err}"
    );
}
