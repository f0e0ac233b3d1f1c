//! The examples as a user runs them, as separate processes: the echo server (echoing, /metrics,
//! graceful shutdown on SIGTERM) and the interactive client talking to it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use std::process::Stdio;

use common::process::{example, start_server};
use common::PATIENCE;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn the_echo_example_echoes_serves_metrics_and_shuts_down_on_sigterm() {
    let (mut child, addr) = start_server("echo", &["--workers", "1"]).await;
    let connect = tokio_tungstenite::connect_async(format!("ws://{addr}/echo"));
    let (mut client, _) = timeout(PATIENCE, connect).await.unwrap().unwrap();
    client.send(Message::text("héllo")).await.unwrap();
    assert_eq!(client.next().await.unwrap().unwrap(), Message::text("héllo"));

    let mut http = tokio::net::TcpStream::connect(&addr).await.unwrap();
    http.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut metrics = String::new();
    timeout(PATIENCE, http.read_to_string(&mut metrics))
        .await
        .unwrap()
        .unwrap();
    assert!(metrics.contains("switchboard_connections_open 1"), "{metrics}");
    assert!(metrics.contains("switchboard_messages_in_total 1"), "{metrics}");

    let pid = child.id().unwrap().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
    assert!(status.success());
    match timeout(PATIENCE, client.next()).await.unwrap() {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected close 1001, got {other:?}"),
    }
    timeout(PATIENCE, async { while client.next().await.is_some() {} })
        .await
        .unwrap();
    let exit = timeout(PATIENCE, child.wait())
        .await
        .expect("the example exits after SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn the_client_example_sends_lines_prints_echoes_and_the_close() {
    let (_server, addr) = start_server("echo", &["--workers", "1"]).await;
    let mut client = Command::new(example("client"))
        .args(["--header", "X-Test: 1", &format!("ws://{addr}/echo")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    stdin.write_all("hello\nwörld\n".as_bytes()).await.unwrap();
    let mut stdout = BufReader::new(client.stdout.take().unwrap()).lines();
    for expected in ["< hello", "< wörld"] {
        let line = timeout(PATIENCE, stdout.next_line()).await.unwrap().unwrap();
        assert_eq!(line.as_deref(), Some(expected));
    }
    drop(stdin); // end of input: the client closes with 1000
    let output = timeout(PATIENCE, client.wait_with_output()).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("closed: 1000"), "{stderr}");

    let refused = Command::new(example("client"))
        .arg("ws://127.0.0.1:1/")
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cannot connect"));
}

#[tokio::test]
async fn a_second_sigterm_during_shutdown_exits_at_once() {
    let (mut child, addr) = start_server("echo", &["--workers", "1"]).await;
    // A raw peer that completes the handshake and then never answers: the graceful shutdown
    // would wait its full 10 s for this peer's close frame.
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    silent
        .write_all(common::upgrade_request("/echo", "").as_bytes())
        .await
        .unwrap();
    let head = common::read_head(&mut silent).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let pid = child.id().unwrap().to_string();
    let kill = |pid: String| async move { Command::new("kill").args(["-TERM", &pid]).status().await.unwrap() };
    assert!(kill(pid.clone()).await.success());
    // The close 1001 reaching the peer shows the graceful shutdown has begun.
    assert_eq!(common::read_close_code(&mut silent).await, Some(1001));
    assert!(kill(pid).await.success());
    let exit = timeout(PATIENCE, child.wait())
        .await
        .expect("the example exits after the second SIGTERM")
        .unwrap();
    // 130: the forced exit, not the end of a graceful shutdown (which exits 0).
    assert_eq!(exit.code(), Some(130), "{exit:?}");
    drop(silent);
}

#[tokio::test]
async fn the_echo_example_serves_wss_with_a_certificate_on_either_server() {
    use std::sync::Arc;
    use switchboard::rustls::pki_types::CertificateDer;
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let dir = std::env::temp_dir().join(format!("switchboard-echo-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let mut roots = switchboard::rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(cert.cert.der().to_vec())).unwrap();
    let client_tls = Arc::new(
        switchboard::rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    for server in [None, Some("--http-server")] {
        let mut args = vec!["--workers", "1", "--tls-cert", cert_path.to_str().unwrap()];
        args.extend(["--tls-key", key_path.to_str().unwrap()]);
        args.extend(server);
        let (_child, addr) = start_server("echo", &args).await;
        let port = addr.rsplit(':').next().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let ws = switchboard::WebSocket::builder(format!("wss://127.0.0.1:{port}/echo"))
            .tls(client_tls.clone())
            .on_connect(move |ws| {
                let tx = tx.clone();
                ws.on_text(move |_, text| drop(tx.send(text.to_string())));
            })
            .connect()
            .await
            .unwrap();
        ws.send("secure echo").await.unwrap();
        assert_eq!(common::report(&mut rx).await, "secure echo", "{server:?}");
        ws.close().await;
    }
    let _ = std::fs::remove_dir_all(dir);
}
