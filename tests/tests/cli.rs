//! The binary's `check` subcommand: a valid configuration exits 0, a bad one exits 1 with
//! a message naming the key (and line), without starting anything.

use std::path::PathBuf;
use std::process::Command;

use sluice_tests::plugins::sluice_binary as binary;

fn check(config: &str) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("sluice-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!(
        "{:x}.toml",
        config.len() * 31 + config.bytes().map(u64::from).sum::<u64>() as usize
    ));
    std::fs::write(&file, config).unwrap();
    let output = Command::new(binary())
        .arg("check")
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn valid_config_passes() {
    let (ok, text) = check(
        "listen = \"127.0.0.1:7000\"\n[clusters.a]\nendpoints = [\"127.0.0.1:1\"]\n[[routes]]\nmatch = \"*\"\ncluster = \"a\"\n",
    );
    assert!(ok, "{text}");
    assert!(text.contains("configuration OK"), "{text}");
}

#[test]
fn each_class_of_error_names_its_key() {
    for (config, key) in [
        ("listen = \"127.0.0.1:1\"\nlsiten = 3\n", "lsiten"),
        ("listen = \"nowhere\"\n", "listen"),
        (
            "[[routes]]\nmatch = \"*\"\ncluster = \"nope\"\n",
            "routes[0].cluster",
        ),
        (
            "[limits]\nmax_message_bytes = \"big\"\n",
            "max_message_bytes",
        ),
        ("[plugin.x]\non_error = \"shrug\"\n", "on_error"),
    ] {
        let (ok, text) = check(config);
        assert!(!ok, "{config:?} passed: {text}");
        assert!(text.contains(key), "{config:?}: {text}");
    }
    let (ok, text) = check("listen = \"127.0.0.1:1\"\nlsiten = 3\n");
    assert!(!ok && text.contains("line 2"), "{text}");
}

#[test]
fn missing_file_is_an_error() {
    let output = Command::new(binary())
        .args(["check", "--config", "/nonexistent/sluice.toml"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/sluice.toml"));
}

/// The documented example config stays valid.
#[test]
fn example_config_is_valid() {
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sluice.example.toml");
    let output = Command::new(binary())
        .arg("check")
        .arg("--config")
        .arg(example)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
