//! Running the examples as separate processes, as users do.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;

use super::PATIENCE;

/// Builds the example (a no-op when it is up to date) and returns its path. `cargo test` alone
/// may not have built it, or built it as a test harness (`--all-targets`).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let target_dir = profile_dir.parent().unwrap();
    let mut build = std::process::Command::new(env!("CARGO"));
    build
        .args(["build", "--quiet", "--example", name, "--target-dir"])
        .arg(target_dir)
        // The features this test was built with, so that the library is not rebuilt without them.
        .args(cfg!(feature = "redis").then_some("--features=redis"))
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    // Without the variables cargo sets for this test binary: ring's build script reruns when
    // CARGO_MANIFEST_DIR or a CARGO_PKG_* variable changes, so inheriting them rebuilt half the
    // dependency tree here, and again at the next plain `cargo build`.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let set_for_tests = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_BIN_",
            "CARGO_CRATE_",
            "CARGO_PRIMARY_",
            "CARGO_TARGET_TMPDIR",
        ];
        if set_for_tests.iter().any(|prefix| key.starts_with(prefix)) {
            build.env_remove(&*key);
        }
    }
    let status = build.status().unwrap();
    assert!(status.success(), "building the {name} example failed");
    profile_dir.join("examples").join(name)
}

/// Starts a server example on 127.0.0.1 port 0 (killed if the test ends first) and reads the
/// address it logs as `listening on ADDR`.
pub async fn start_server(name: &str, extra_args: &[&str]) -> (Child, String) {
    let mut child = Command::new(example(name))
        .args(["--addr", "127.0.0.1:0"])
        .args(extra_args)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the example starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    while let Some(line) = timeout(PATIENCE, lines.next_line()).await.unwrap().unwrap() {
        if let Some(rest) = line.split("listening on ").nth(1) {
            let addr = rest.split(':').take(2).collect::<Vec<_>>().join(":");
            // Keep draining its log so it never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return (child, addr);
        }
    }
    panic!("the {name} example never said where it listens");
}
