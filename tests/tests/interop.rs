//! Interop with an independent gRPC implementation: a Python `grpcio` client runs the
//! interop cases through sluice against a Python `grpcio` server, on both body paths.
//! The Python environment is set up by `scripts/test.sh` (`.venv` at the workspace root,
//! or the interpreter named by `SLUICE_PYTHON`).

use sluice_tests::fixture::{BODY_MODES, Proxy, init_logs};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CASES: [&str; 13] = [
    "empty_unary",
    "large_unary",
    "client_streaming",
    "server_streaming",
    "ping_pong",
    "empty_stream",
    "custom_metadata",
    "status_code_and_message",
    "special_status_message",
    "unimplemented_method",
    "cancel_after_begin",
    "cancel_after_first_response",
    "timeout_on_sleeping_server",
];

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python() -> PathBuf {
    let python = std::env::var_os("SLUICE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/python"));
    assert!(
        python.exists(),
        "no Python with grpcio at {}: run scripts/test.sh (it creates .venv) or set SLUICE_PYTHON",
        python.display()
    );
    python
}

/// Kills the child (which this test started) when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_python_server() -> (ChildGuard, u16) {
    let mut child = Command::new(python())
        .arg(workspace().join("tests/python/interop_server.py"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the grpcio server");
    let stdout = child.stdout.take().expect("server stdout");
    let guard = ChildGuard(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the server's port");
    let port = line
        .strip_prefix("PORT ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("server said {line:?}, not PORT n"));
    (guard, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcio_client_and_server_through_sluice_on_both_paths() {
    init_logs();
    let (_server, port) = start_python_server();
    let upstream: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let mut table = Vec::new();
    for mode in BODY_MODES {
        let proxy = Proxy::to(upstream, mode).await;
        let target = proxy.addr.to_string();
        let client = tokio::process::Command::new(python())
            .arg(workspace().join("tests/python/interop_client.py"))
            .arg(&target)
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(240), client)
            .await
            .expect("interop client finishes within 240 s")
            .expect("run the grpcio client");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        print!("[{mode:?}]\n{stdout}");
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        for case in CASES {
            let passed = stdout.lines().any(|l| l == format!("PASS {case}"));
            table.push((case, mode, passed));
        }
    }
    let failed: Vec<_> = table.iter().filter(|(_, _, passed)| !passed).collect();
    assert!(failed.is_empty(), "interop cases failed: {failed:?}");
}
