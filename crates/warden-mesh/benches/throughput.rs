//! Data plane throughput: TCP between two network namespaces through Warden's userspace
//! WireGuard (gotatun on TUN), with the stateful filter on and off, side by side in one run.
//! iperf3 measures; runs alternate so drift hits both alike.
//!
//! `cargo bench -p warden-mesh --features dataplane --bench throughput` (root, iperf3 and
//! iproute2 installed; `THROUGHPUT_SECONDS` and `THROUGHPUT_ROUNDS` tune it).

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "benchmark setup"
)]

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use warden_mesh::dataplane::{DataPlane, DataPlaneConfig, generate_key};
use warden_mesh::{Effect, FilterRule, MeshRanges, NodeMap, PeerEntry, Ports, Protocol, PublicKey};

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `node IF PORT PRIVATE OFFSET PEER_KEY PEER_OFFSET PEER_ENDPOINT on|off`: one node, until killed.
fn node(args: &[String]) {
    let [
        interface,
        port,
        private,
        offset,
        peer_key,
        peer_offset,
        peer_endpoint,
        filter,
    ] = args
    else {
        panic!("node IF PORT PRIVATE OFFSET PEER_KEY PEER_OFFSET PEER_ENDPOINT on|off");
    };
    let ranges = MeshRanges::default();
    let (ipv4, ipv6) = ranges.addresses(offset.parse().unwrap()).unwrap();
    let (peer4, peer6) = ranges.addresses(peer_offset.parse().unwrap()).unwrap();
    let private: [u8; 32] = STANDARD.decode(private).unwrap().try_into().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = DataPlaneConfig {
            interface: interface.clone(),
            listen_port: port.parse().unwrap(),
            ranges,
            ipv4,
            ipv6,
            filter: filter == "on",
        };
        let plane = DataPlane::start(config, private).await.unwrap();
        let map = NodeMap {
            name: interface.clone(),
            ipv4,
            ipv6,
            peers: vec![PeerEntry {
                name: "peer".into(),
                key: peer_key.parse::<PublicKey>().unwrap(),
                ipv4: peer4,
                ipv6: peer6,
                endpoint: Some(peer_endpoint.parse::<SocketAddr>().unwrap()),
            }],
            inbound: vec![FilterRule {
                policy: "bench".into(),
                effect: Effect::Permit,
                sources: vec![IpAddr::V4(peer4), IpAddr::V6(peer6)],
                protocols: Some(BTreeSet::from([Protocol::Tcp])),
                ports: Ports(vec![(5201, 5201)]),
            }],
        };
        plane.apply(&map).await.unwrap();
        println!("ready");
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            plane.expire_flows();
        }
    });
}

struct Lab {
    namespaces: Vec<String>,
    nodes: Vec<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            let _ = n.kill();
            let _ = n.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

fn measure(filter: &str, seconds: u32) -> f64 {
    let pid = std::process::id();
    let (a, b) = (format!("tpa{pid}"), format!("tpb{pid}"));
    let mut lab = Lab {
        namespaces: vec![a.clone(), b.clone()],
        nodes: Vec::new(),
    };
    for ns in [&a, &b] {
        let _ = Command::new("ip").args(["netns", "del", ns]).output();
        run("ip", &["netns", "add", ns]);
        run("ip", &["-n", ns, "link", "set", "lo", "up"]);
    }
    run(
        "ip",
        &[
            "link", "add", "eth0", "netns", &a, "type", "veth", "peer", "name", "eth0", "netns", &b,
        ],
    );
    for (ns, ip) in [(&a, "10.88.0.1/24"), (&b, "10.88.0.2/24")] {
        run("ip", &["-n", ns, "addr", "add", ip, "dev", "eth0"]);
        run("ip", &["-n", ns, "link", "set", "eth0", "up"]);
    }
    let (key_a, pub_a) = generate_key().unwrap();
    let (key_b, pub_b) = generate_key().unwrap();
    let me = std::env::current_exe().unwrap();
    let me = me.to_str().unwrap();
    for (ns, iface, key, offset, peer, peer_offset, endpoint) in [
        (
            &a,
            format!("tpa{}", pid % 100_000),
            key_a,
            "1",
            pub_b,
            "2",
            "10.88.0.2:51820",
        ),
        (
            &b,
            format!("tpb{}", pid % 100_000),
            key_b,
            "2",
            pub_a,
            "1",
            "10.88.0.1:51820",
        ),
    ] {
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                me,
                "node",
                &iface,
                "51820",
                &STANDARD.encode(key),
                offset,
                &peer.to_string(),
                peer_offset,
                endpoint,
                filter,
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "ready");
        lab.nodes.push(child);
    }
    let (_, server_ip) = (
        MeshRanges::default().addresses(1),
        MeshRanges::default().addresses(2).unwrap().0,
    );
    let mut server = Command::new("ip")
        .args(["netns", "exec", &b, "iperf3", "-s", "-1"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let out = run(
        "ip",
        &[
            "netns",
            "exec",
            &a,
            "iperf3",
            "-c",
            &server_ip.to_string(),
            "-t",
            &seconds.to_string(),
            "-J",
        ],
    );
    let _ = server.wait();
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap()
        / 1e9
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("node") {
        return node(&args[1..]);
    }
    let seconds: u32 = std::env::var("THROUGHPUT_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let rounds: u32 = std::env::var("THROUGHPUT_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        off.push(measure("off", seconds));
        on.push(measure("on", seconds));
        println!(
            "round {}: filter off {:.3} Gbit/s, filter on {:.3} Gbit/s",
            round + 1,
            off[off.len() - 1],
            on[on.len() - 1]
        );
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!("TCP through gotatun between two namespaces, {seconds} s × {rounds} rounds each:");
    println!("  without the filter  {:.3} Gbit/s", mean(&off));
    println!("  with the filter     {:.3} Gbit/s", mean(&on));
    println!("  ratio               {:.3}×", mean(&on) / mean(&off));
}
