//! TLS: the listener with certificates made at test time (ALPN h2), mTLS on the listener,
//! TLS to upstreams (CA file, SNI, client certificate), certificate reload from the
//! watched folder, and configuration errors that name the key.

use sluice::{Config, Overrides};
use sluice_tests::certs::{self, CertFiles, TestCa};
use sluice_tests::fixture::{Proxy, Upstream, init_logs};
use sluice_tests::pb::testing::Empty;
use sluice_tests::raw;
use std::path::Path;
use std::time::{Duration, Instant};

const METHOD: &str = "/sluice.testing.TestService/EmptyCall";

async fn proxy_from_toml(dir: &Path, toml: &str) -> Proxy {
    let path = dir.join("sluice.toml");
    std::fs::write(&path, toml).unwrap();
    let config = Config::load(&Overrides {
        config: Some(path),
        ..Overrides::default()
    })
    .unwrap_or_else(|e| panic!("{e}\n{toml}"));
    Proxy::from_config(config).await
}

fn tls_listener_toml(
    upstream: std::net::SocketAddr,
    server: &CertFiles,
    client_ca: Option<&Path>,
) -> String {
    let mut toml = format!(
        "listen = \"127.0.0.1:0\"\n[[routes]]\nmatch = \"*\"\ncluster = \"up\"\n[clusters.up]\nendpoints = [\"{upstream}\"]\n[tls]\ncert = {:?}\nkey = {:?}\n",
        server.cert, server.key
    );
    if let Some(ca) = client_ca {
        toml.push_str(&format!("client_ca = {ca:?}\n"));
    }
    toml
}

async fn call_over_tls(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    identity: Option<&CertFiles>,
) -> Result<Vec<u8>, String> {
    let (client, leaf) =
        certs::connect_tls(addr, "localhost", certs::client_config(ca_pem, identity)).await?;
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        raw::try_call(&client, raw::grpc_request(METHOD, &[]), b""),
    )
    .await
    .map_err(|_| "timed out".to_owned())??;
    match response.grpc_status() {
        Some(0) => Ok(leaf),
        other => Err(format!("grpc-status {other:?}: {response:?}")),
    }
}

#[tokio::test]
async fn tls_listener_and_mtls_require_what_they_should() {
    init_logs();
    let dir = certs::temp_dir("listener");
    let ca = TestCa::new("sluice test CA");
    let ca_file = ca.write(&dir, "ca.pem");
    let server = ca.issue(
        &dir,
        "server",
        "localhost",
        &["localhost", "127.0.0.1"],
        false,
    );
    let client = ca.issue(&dir, "client", "test client", &["client.test"], true);
    let stranger = TestCa::new("another CA").issue(&dir, "stranger", "stranger", &["x.test"], true);
    let upstream = Upstream::start().await;

    let tls = proxy_from_toml(&dir, &tls_listener_toml(upstream.addr, &server, None)).await;
    call_over_tls(tls.addr, &ca.pem, None)
        .await
        .expect("TLS call");
    // A client that does not trust the CA refuses the proxy.
    let other = TestCa::new("untrusted");
    assert!(call_over_tls(tls.addr, &other.pem, None).await.is_err());

    let mtls = proxy_from_toml(
        &dir,
        &tls_listener_toml(upstream.addr, &server, Some(&ca_file)),
    )
    .await;
    call_over_tls(mtls.addr, &ca.pem, Some(&client))
        .await
        .expect("mTLS call with a client certificate");
    let without = call_over_tls(mtls.addr, &ca.pem, None).await;
    assert!(
        without.is_err(),
        "mTLS let a client without certificate through"
    );
    let wrong = call_over_tls(mtls.addr, &ca.pem, Some(&stranger)).await;
    assert!(wrong.is_err(), "mTLS accepted a certificate of another CA");
    // The upstream saw only the calls that were let through (2).
    assert_eq!(upstream.calls(), 2);
}

#[tokio::test]
async fn upstream_tls_with_ca_sni_and_client_certificate() {
    init_logs();
    let dir = certs::temp_dir("upstream");
    let ca = TestCa::new("sluice test CA");
    let ca_file = ca.write(&dir, "ca.pem");
    let server = ca.issue(&dir, "server", "localhost", &["localhost"], false);
    let client = ca.issue(&dir, "client", "edge proxy", &["edge.test"], true);
    let upstream = Upstream::start().await;
    // The "upstream" speaking TLS is a second sluice that demands client certificates.
    let inner = proxy_from_toml(
        &dir,
        &tls_listener_toml(upstream.addr, &server, Some(&ca_file)),
    )
    .await;
    let edge = |tls: String| {
        format!(
            "listen = \"127.0.0.1:0\"\n[[routes]]\nmatch = \"*\"\ncluster = \"inner\"\n[clusters.inner]\nendpoints = [\"{}\"]\nconnect_timeout_ms = 2000\n[clusters.inner.tls]\nca = {ca_file:?}\n{tls}",
            inner.addr
        )
    };
    let identity = format!("cert = {:?}\nkey = {:?}\n", client.cert, client.key);

    // The endpoint is 127.0.0.1, the certificate says localhost: SNI/verification use
    // `server_name`.
    let good = proxy_from_toml(
        &dir,
        &edge(format!("server_name = \"localhost\"\n{identity}")),
    )
    .await;
    let mut client_stub = good.client().await;
    client_stub
        .empty_call(Empty {})
        .await
        .expect("call over upstream mTLS");
    client_stub
        .empty_call(Empty {})
        .await
        .expect("second call on the pooled TLS connection");

    for (label, tls) in [
        (
            "no client certificate",
            "server_name = \"localhost\"\n".to_owned(),
        ),
        (
            "wrong server name",
            format!("server_name = \"wrong.test\"\n{identity}"),
        ),
        ("endpoint IP not in the certificate", identity.clone()),
    ] {
        let bad = proxy_from_toml(&dir, &edge(tls)).await;
        let status = bad
            .client()
            .await
            .empty_call(Empty {})
            .await
            .expect_err(label);
        assert_eq!(
            status.code(),
            tonic::Code::Unavailable,
            "{label}: {status:?}"
        );
    }
    assert_eq!(upstream.calls(), 2);
}

#[tokio::test]
async fn certificates_reload_when_their_files_change() {
    init_logs();
    let dir = certs::temp_dir("reload");
    let ca = TestCa::new("sluice test CA");
    let server = ca.issue(&dir, "server", "localhost", &["localhost"], false);
    let upstream = Upstream::start().await;
    let proxy = proxy_from_toml(&dir, &tls_listener_toml(upstream.addr, &server, None)).await;
    let first = call_over_tls(proxy.addr, &ca.pem, None).await.unwrap();

    // A renewed certificate (new key) replaces the files: new handshakes present it.
    ca.issue(&dir, "server", "localhost", &["localhost"], false);
    let started = Instant::now();
    let second = loop {
        let leaf = call_over_tls(proxy.addr, &ca.pem, None).await.unwrap();
        if leaf != first {
            break leaf;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the renewed certificate was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // A broken file is refused and the last good certificate keeps serving.
    std::fs::write(dir.join("server.pem.tmp"), "not a certificate").unwrap();
    std::fs::rename(dir.join("server.pem.tmp"), &server.cert).unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = call_over_tls(proxy.addr, &ca.pem, None)
        .await
        .expect("still serving");
    assert_eq!(after, second);
    let (reloaded, errors) = proxy.proxy.certificates().reload();
    assert_eq!((reloaded, errors.len()), (0, 1), "{errors:?}");
    assert!(
        errors[0].to_string().contains("server.pem"),
        "{}",
        errors[0]
    );
}

#[test]
fn tls_configuration_errors_name_the_key() {
    let dir = certs::temp_dir("config");
    let ca = TestCa::new("sluice test CA");
    let server = ca.issue(&dir, "server", "localhost", &["localhost"], false);
    let cases = [
        (format!("[tls]\ncert = \"{}/missing.pem\"\nkey = {:?}\n", dir.display(), server.key), "tls.cert"),
        (format!("[tls]\ncert = {:?}\n", server.cert), "key"),
        (
            format!("[clusters.a]\nendpoints = [\"127.0.0.1:1\"]\n[clusters.a.tls]\ncert = {:?}\n", server.cert),
            "clusters.a.tls.key",
        ),
        (
            "[clusters.a]\nendpoints = [\"127.0.0.1:1\"]\n[clusters.a.tls]\nserver_name = \"bad name!\"\n".to_owned(),
            "clusters.a.tls.server_name",
        ),
        (
            "[clusters.a]\nendpoints = [\"127.0.0.1:1\"]\n[clusters.a.tls]\nsni = \"x\"\n".to_owned(),
            "sni",
        ),
    ];
    for (toml, key) in cases {
        let err = Config::from_toml(&toml, Path::new("t.toml"), &Overrides::default())
            .expect_err(&toml)
            .to_string();
        assert!(err.contains(key), "{err:?} does not name {key:?}");
    }
    // A file that exists but holds no certificate is refused when the proxy starts.
    std::fs::write(dir.join("junk.pem"), "junk").unwrap();
    let config = Config::from_toml(
        &format!(
            "[tls]\ncert = \"{}/junk.pem\"\nkey = {:?}\n",
            dir.display(),
            server.key
        ),
        Path::new("t.toml"),
        &Overrides::default(),
    )
    .unwrap();
    let err = sluice::tls::Certificates::load(&config)
        .unwrap_err()
        .to_string();
    assert!(err.contains("junk.pem"), "{err}");
}
