//! Port forwards through the proxy, allowed and refused by the `connect` policy.

use serde_json::json;
use warden_testkit::{TestServer, free_port, through_proxy as proxied};

use crate::{apply_policy, setup, starter_policy};

/// A TCP echo service on the host's loopback (the test machine is the host).
async fn echo_service() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = socket.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

/// Sends `ping` through the local end of a forward; what came back, if anything.
async fn ping(local: u16) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = None;
    for _ in 0..100 {
        if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", local)).await {
            socket = Some(s);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut socket = socket.expect("ssh -L listens");
    socket.write_all(b"ping").await.ok()?;
    let mut buf = [0u8; 4];
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        socket.read_exact(&mut buf),
    )
    .await;
    match read {
        Ok(Ok(_)) => Some(String::from_utf8_lossy(&buf).into_owned()),
        _ => None,
    }
}

#[tokio::test]
async fn port_forwards_follow_the_connect_policy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (server, _sshd, _) = setup(d).await;
    let service = echo_service().await;
    let forward = |to: &str| {
        let local = free_port();
        let child = proxied("ssh", &server, d)
            .args([
                "-N",
                "-L",
                &format!("{local}:{to}:{service}"),
                "-l",
                "root",
                "db-1",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        (local, child)
    };
    let forwards = |server: &TestServer| server.audit("ssh.forward");

    // Denied by default: the local end opens, but nothing goes through.
    let (local, mut child) = forward("127.0.0.1");
    assert_eq!(ping(local).await, None);
    let denied = forwards(&server);
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["outcome"], "denied");
    assert_eq!(
        denied[0]["reason"],
        format!(
            "forwarding port {service} on `db-1`: policy v1: no policy permits `connect` (default deny)"
        )
    );
    child.kill().unwrap();
    let _ = child.wait();

    // The policy allows ops to reach that port on ops hosts: the forward carries bytes.
    let policy = starter_policy(d);
    std::fs::write(
        policy.join("forward.cedar"),
        format!(
            "@id(\"ops-echo\")\npermit (principal in Warden::Group::\"ops\", action == Warden::Action::\"connect\", resource)\nwhen {{ resource.hasTag(\"team\") && resource.getTag(\"team\") == \"ops\" && context.protocol == \"tcp\" && context.port == {service} }};\n"
        ),
    )
    .unwrap();
    apply_policy(&server, &policy);
    let (local, mut child) = forward("127.0.0.1");
    assert_eq!(ping(local).await.as_deref(), Some("ping"));
    let allowed = forwards(&server);
    assert_eq!(allowed.len(), 2, "{allowed:?}");
    assert_eq!(allowed[1]["outcome"], "success");
    assert_eq!(
        allowed[1]["details"]["determining_policies"],
        json!(["forward.cedar:ops-echo"])
    );

    // Only the host's own ports: another address is refused, whatever the policy says.
    let (other, mut other_child) = forward("10.255.255.1");
    assert_eq!(ping(other).await, None);
    let last = forwards(&server);
    assert_eq!(
        last[2]["reason"],
        "forwarding to `10.255.255.1` through `db-1`: only the host's own ports (localhost) may be forwarded"
    );
    for c in [&mut child, &mut other_child] {
        c.kill().unwrap();
        let _ = c.wait();
    }
    // The forward was counted in the session's recordings.
    let mut kinds = Vec::new();
    for _ in 0..100 {
        kinds = server
            .audit("ssh.session.end")
            .iter()
            .flat_map(|e| {
                e["details"]["recordings"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|r| r["kind"].as_str().map(str::to_owned))
            .collect();
        if kinds.iter().any(|k| k == "forward") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(kinds.iter().any(|k| k == "forward"), "{kinds:?}");
}
