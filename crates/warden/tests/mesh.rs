//! The WireGuard mesh end to end, in network namespaces this test makes: two hosts running
//! the agent and a person's device running `warden mesh up`, joined by a bridge. Allowed flows
//! pass (a TCP connection and an HTTP request), denied ones are dropped at the destination, a
//! revocation cuts an established connection, the stock `wg` reads the interfaces, and the
//! wg-quick file `warden mesh config` prints is accepted by `wg setconf` after `wg-quick strip`.
//!
//! Needs root, /dev/net/tun, iproute2, wireguard-tools, socat, curl and python3 (installed by
//! scripts/test.sh); it fails when they are missing.
#![expect(
    clippy::too_many_lines,
    reason = "an end-to-end journey reads in order, one step after another"
)]
#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers fail the test"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use warden_testkit::{Backend, TestServer, run_cli, tool};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_warden"))
}

fn ok(cmd: &str, args: &[&str]) -> String {
    let out = tool(cmd, args);
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn needs_peers() {
    for tool in ["ip", "wg", "wg-quick", "socat", "curl", "python3"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap();
        assert!(
            found.status.success(),
            "`{tool}` is missing: run scripts/test.sh, which installs the test peers"
        );
    }
    assert!(
        Path::new("/dev/net/tun").exists(),
        "/dev/net/tun is missing: the mesh test needs a TUN device"
    );
}

/// Namespaces, links and processes, torn down on drop.
struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
    dir: tempfile::TempDir,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in &self.namespaces {
            let _ = tool("ip", &["netns", "del", ns]);
        }
    }
}

impl Lab {
    fn new(run: usize) -> Lab {
        let prefix = format!("wm{}{run}", std::process::id() % 100_000);
        let mut lab = Lab {
            prefix,
            namespaces: Vec::new(),
            children: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
        };
        let lan = lab.ns("lan");
        ok("ip", &["-n", &lan, "link", "add", "br0", "type", "bridge"]);
        ok("ip", &["-n", &lan, "link", "set", "br0", "up"]);
        lab
    }

    fn ns(&mut self, name: &str) -> String {
        let ns = format!("{}{name}", self.prefix);
        let _ = tool("ip", &["netns", "del", &ns]);
        ok("ip", &["netns", "add", &ns]);
        ok("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        self.namespaces.push(ns.clone());
        ns
    }

    /// A namespace on the bridge at 10.77.0.N.
    fn host(&mut self, name: &str, n: u8) -> String {
        let ns = self.ns(name);
        let lan = format!("{}lan", self.prefix);
        let peer = format!("p{}{name}", self.prefix);
        ok(
            "ip",
            &[
                "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &peer,
                "netns", &lan,
            ],
        );
        ok(
            "ip",
            &[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("10.77.0.{n}/24"),
                "dev",
                "eth0",
            ],
        );
        ok("ip", &["-n", &ns, "link", "set", "eth0", "up"]);
        ok(
            "ip",
            &["-n", &lan, "link", "set", &peer, "master", "br0", "up"],
        );
        ns
    }

    /// Makes 127.0.0.1:PORT inside `ns` reach 127.0.0.1:PORT outside, through a unix socket.
    fn relay(&mut self, ns: &str, port: u16) {
        let sock = self.dir.path().join(format!("relay-{port}.sock"));
        if !sock.exists() {
            let child = Command::new("socat")
                .args([
                    format!("UNIX-LISTEN:{},fork", sock.display()),
                    format!("TCP:127.0.0.1:{port}"),
                ])
                .spawn()
                .unwrap();
            self.children.push(child);
            let deadline = Instant::now() + Duration::from_secs(5);
            while !sock.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "socat"])
            .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr"))
            .arg(format!("UNIX-CONNECT:{}", sock.display()))
            .spawn()
            .unwrap();
        self.children.push(child);
        // Ready when the listener inside the namespace takes a connection.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let probe = Command::new("ip")
                .args(["netns", "exec", ns, "socat", "-u", "/dev/null"])
                .arg(format!("TCP:127.0.0.1:{port},connect-timeout=1"))
                .stderr(Stdio::null())
                .status()
                .unwrap();
            if probe.success() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn spawn(&mut self, ns: &str, args: &[&str], env: &[(&str, &str)], log: &str) {
        let log = std::fs::File::create(self.dir.path().join(log)).unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.children.push(cmd.spawn().unwrap());
    }

    /// The real agent of host `name` (joined with `join_host_at` under the lab's directory)
    /// in `ns`, with its mesh interface `interface` reachable at 10.77.0.N:51820. Returns its
    /// data directory.
    fn agent(
        &mut self,
        server: &TestServer,
        ns: &str,
        name: &str,
        interface: &str,
        n: u8,
    ) -> PathBuf {
        let data = self.dir.path().join(format!("agent-{name}"));
        let conf = self.dir.path().join(format!("sshd-{name}.d"));
        let endpoint = format!("10.77.0.{n}:51820");
        let spool = self.dir.path().join(format!("break-glass-{name}"));
        let args = [
            bin().to_str().unwrap(),
            "agent",
            "--server",
            &server.url,
            "--data-dir",
            data.to_str().unwrap(),
            "--sshd-config-dir",
            conf.to_str().unwrap(),
            "--mesh-interface",
            interface,
            "--mesh-endpoint",
            &endpoint,
            "--break-glass-spool",
            spool.to_str().unwrap(),
        ];
        self.spawn(ns, &args, &[], &format!("agent-{name}.log"));
        data
    }

    /// `warden mesh up` for device `name` in `ns` with `token`. Returns its data directory.
    fn device(
        &mut self,
        server: &TestServer,
        ns: &str,
        name: &str,
        interface: &str,
        token: &str,
    ) -> PathBuf {
        let data = self.dir.path().join(name);
        let args = [
            bin().to_str().unwrap(),
            "mesh",
            "up",
            "--server",
            &server.url,
            "--name",
            name,
            "--interface",
            interface,
            "--data-dir",
            data.to_str().unwrap(),
        ];
        self.spawn(
            ns,
            &args,
            &[("WARDEN_TOKEN", token)],
            &format!("{name}.log"),
        );
        data
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }
}

fn status(dir: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(dir.join("mesh-status.json")).ok()?).ok()
}

/// `wg show IF peers`, or `None` while the interface is not up yet.
fn wg_peers_if_up(interface: &str) -> Option<Vec<String>> {
    let out = tool("wg", &["show", interface, "peers"]);
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    })
}

/// The keys in `wg show IF peers`, read by the stock tool through the UAPI socket.
fn wg_peers(interface: &str) -> Vec<String> {
    ok("wg", &["show", interface, "peers"])
        .lines()
        .map(str::to_owned)
        .collect()
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

fn in_ns(ns: &str, args: &[&str]) -> Output {
    let mut full = vec!["netns", "exec", ns];
    full.extend_from_slice(args);
    tool("ip", &full)
}

/// Whether `url` answers 200 from inside `ns` within two seconds.
fn http_ok(ns: &str, url: &str) -> bool {
    let args = [
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "2",
        url,
    ];
    in_ns(ns, &args).stdout == b"200"
}

fn mesh_ip(dir: &Path) -> String {
    let enrolled: Value =
        serde_json::from_slice(&std::fs::read(dir.join("mesh.json")).unwrap()).unwrap();
    enrolled["ipv4"].as_str().unwrap().to_owned()
}

/// The server's mutual-TLS and HTTP ports (on 127.0.0.1), for the relays.
fn ports(server: &TestServer) -> (u16, u16) {
    let port = |addr: &str| {
        addr.trim_end_matches('/')
            .rsplit_once(':')
            .unwrap()
            .1
            .parse()
            .unwrap()
    };
    (port(&server.mtls_addr), port(&server.url))
}

const MESH_POLICY: &str = r#"
@id("eng-web")
permit(principal in Warden::Group::"eng", action == Warden::Action::"connect", resource)
when { resource.hasTag("role") && resource.getTag("role") == "web" && context.protocol == "tcp" && [7000, 8080].contains(context.port) };

@id("web-db")
permit(principal is Warden::Host, action == Warden::Action::"connect", resource)
when { principal.hasTag("role") && principal.getTag("role") == "web" && resource.hasTag("role") && resource.getTag("role") == "db" && context.protocol == "tcp" && context.port == 5432 };
"#;

fn policy_dir(root: &Path, extra: &str) -> PathBuf {
    let dir = root.join(format!("policy-{}", extra.len()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in warden_policy::STARTER {
        std::fs::write(dir.join(name), text).unwrap();
    }
    std::fs::write(dir.join("mesh.cedar"), extra).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn mesh_in_namespaces() {
    needs_peers();
    for (run, backend) in Backend::ALL.into_iter().enumerate() {
        mesh_on(run, backend).await;
    }
}

async fn mesh_on(run: usize, backend: Backend) {
    let server = TestServer::start(bin(), backend, "").await;
    let mut lab = Lab::new(run);
    let root = lab.dir.path().to_path_buf();
    let admin = server.token("root", "admin", None);
    for args in [
        &["user", "add", "alice"][..],
        &["user", "add", "bob"],
        &["group", "add", "eng"],
        &["group", "add-member", "eng", "alice"],
        &["group", "add-member", "eng", "bob"],
    ] {
        let out = server.admin(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    server.join_host_at(&root, "web-1", &["role=web"], "127.0.0.1:22");
    server.join_host_at(&root, "db-1", &["role=db"], "127.0.0.1:22");

    // A policy naming a label no host carries is refused, and nothing changes.
    let typo = policy_dir(
        &root,
        &MESH_POLICY
            .replace("getTag(\"role\") == \"db\"", "getTag(\"rol\") == \"db\"")
            .replace(
                "resource.hasTag(\"role\") && resource.getTag(\"rol\")",
                "resource.hasTag(\"rol\") && resource.getTag(\"rol\")",
            ),
    );
    let out = server.remote(&admin, &["policy", "apply", typo.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("policy `mesh.cedar:web-db` tests the label `rol`, which no joined host carries: check its spelling, or join a host with `--label rol=…` first"), "{stderr}");
    let good = policy_dir(&root, MESH_POLICY);
    let out = server.remote(&admin, &["policy", "apply", good.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (a, b, d) = (lab.host("a", 1), lab.host("b", 2), lab.host("d", 3));
    let (mtls_port, http_port) = ports(&server);
    for ns in [&a, &b] {
        lab.relay(ns, mtls_port);
    }
    lab.relay(&d, http_port);
    let (if_a, if_b, if_d) = (
        format!("{}a", lab.prefix),
        format!("{}b", lab.prefix),
        format!("{}d", lab.prefix),
    );
    let bin = bin().to_str().unwrap();
    let dir_a = lab.agent(&server, &a, "web-1", &if_a, 1);
    let dir_b = lab.agent(&server, &b, "db-1", &if_b, 2);
    let alice = server.token("alice-cli", "member", Some("alice"));
    let device_dir = lab.device(&server, &d, "alice-laptop", &if_d, &alice);
    // A device whose machine already uses part of the mesh range refuses to come up, and
    // enrolls nothing.
    let e = lab.host("e", 4);
    ok(
        "ip",
        &["-n", &e, "addr", "add", "100.64.200.1/24", "dev", "eth0"],
    );
    lab.relay(&e, http_port);
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &e,
            bin,
            "mesh",
            "up",
            "--server",
            &server.url,
            "--name",
            "clash",
        ])
        .args([
            "--interface",
            &format!("{}e", lab.prefix),
            "--data-dir",
            root.join("clash").to_str().unwrap(),
        ])
        .env("WARDEN_TOKEN", &alice)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: the mesh range 100.64.0.0/10 overlaps 100.64.200.0/24 on eth0: choose a mesh range no local network uses"
    );
    let peers_of =
        |dir: &Path| status(dir).map_or(0, |s| s["peers"].as_array().map_or(0, Vec::len));
    wait_for("the three nodes' maps", Duration::from_secs(30), || {
        peers_of(&dir_a) == 2 && peers_of(&dir_b) == 1 && peers_of(&device_dir) == 1
    });
    // The stock tool reads the agents' interfaces.
    assert_eq!(wg_peers(&if_a).len(), 2, "{}", lab.log("agent-web-1.log"));
    assert_eq!(wg_peers(&if_b).len(), 1);
    let dump = ok("wg", &["show", &if_a, "dump"]);
    assert!(dump.lines().next().unwrap().contains("\t51820\t"), "{dump}");

    // The operator's view through GraphQL.
    let (_, nodes) = server
        .graphql(
            Some(&admin),
            "{ meshNodes { name kind owner ipv4 live labels groups } }",
            Value::Null,
        )
        .await;
    let nodes = nodes["data"]["meshNodes"].as_array().unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alice-laptop", "db-1", "web-1"], "{nodes:?}");
    assert!(nodes.iter().all(|n| n["live"] == true));
    assert_eq!(nodes[0]["groups"], serde_json::json!(["eng"]));
    assert_eq!(nodes[2]["labels"], serde_json::json!(["role=web"]));
    let (ip_a, ip_b) = (mesh_ip(&dir_a), mesh_ip(&dir_b));
    lab.spawn(
        &a,
        &["python3", "-m", "http.server", "8080", "--bind", "0.0.0.0"],
        &[],
        "http.log",
    );
    lab.spawn(
        &a,
        &["socat", "TCP-LISTEN:7000,fork,reuseaddr", "EXEC:cat"],
        &[],
        "echo-a.log",
    );
    lab.spawn(
        &a,
        &["socat", "TCP-LISTEN:9000,fork,reuseaddr", "EXEC:cat"],
        &[],
        "closed-a.log",
    );
    lab.spawn(
        &b,
        &["socat", "TCP-LISTEN:5432,fork,reuseaddr", "EXEC:cat"],
        &[],
        "echo-b.log",
    );
    lab.spawn(
        &b,
        &["socat", "TCP-LISTEN:8080,fork,reuseaddr", "EXEC:cat"],
        &[],
        "http-b.log",
    );
    std::thread::sleep(Duration::from_millis(300));

    // Allowed: the device's HTTP request to the web host (the first one waits for handshakes).
    let url = format!("http://{ip_a}:8080/");
    wait_for(
        "an HTTP answer from web-1 through the mesh",
        Duration::from_secs(20),
        || http_ok(&d, &url),
    );
    // Allowed: the web host's TCP connection to the database.
    let echo = |ns: &str, ip: &str, port: u16| {
        in_ns(
            ns,
            &[
                "sh",
                "-c",
                &format!("echo ping | socat -T2 - TCP:{ip}:{port},connect-timeout=2"),
            ],
        )
    };
    wait_for("web-1 reaching db-1:5432", Duration::from_secs(20), || {
        echo(&a, &ip_b, 5432).stdout == b"ping\n"
    });
    // Denied, and dropped rather than refused: the database reaching the web host, the web
    // host reaching a port the policy does not name, the device reaching the database.
    for (ns, ip, port) in [
        (&b, &ip_a, 8080),
        (&d, &ip_a, 9000),
        (&d, &ip_b, 5432),
        (&a, &ip_b, 8080),
    ] {
        let out = echo(ns, ip, port);
        assert!(out.stdout.is_empty(), "{ns} → {ip}:{port} passed");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("Connection refused"),
            "{ns} → {ip}:{port}: the filter must drop, not refuse: {err}"
        );
    }
    let dropped = status(&dir_a).unwrap()["filter"]["dropped"]
        .as_u64()
        .unwrap();
    assert!(dropped >= 2, "web-1 dropped {dropped}");

    // `warden mesh status` shows the tracked flows.
    let out = run_cli(
        Path::new(bin),
        &["mesh", "status", "--data-dir", dir_a.to_str().unwrap()],
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("FLOW") && shown.contains(":8080") && shown.contains("remote"),
        "{shown}"
    );

    // Revocation: an established connection from the device is cut when alice is disabled.
    let script = format!(
        "import socket,time\ns=socket.create_connection(('{ip_a}',7000),timeout=2)\ns.settimeout(1)\nwhile True:\n  s.sendall(b'x')\n  try:\n    got=s.recv(10)\n  except Exception:\n    print('stalled',flush=True);break\n  print('echo' if got else 'closed',flush=True)\n  time.sleep(0.1)\n"
    );
    let mut client = Command::new("ip")
        .args(["netns", "exec", &d, "python3", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    for _ in 0..3 {
        assert_eq!(lines.next().unwrap().unwrap(), "echo");
    }
    let out = server.admin(&["user", "disable", "alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let disabled = Instant::now();
    let gone = wait_for(
        "alice's device to leave web-1's peers",
        Duration::from_secs(5),
        || wg_peers(&if_a).len() == 1,
    );
    let cut = loop {
        let line = lines.next().unwrap().unwrap();
        if line != "echo" {
            assert_eq!(line, "stalled");
            break disabled.elapsed();
        }
    };
    let _ = client.wait();
    eprintln!("revocation: peer removed after {gone:?}, connection stalled after {cut:?}");
    assert!(gone < Duration::from_secs(2), "{gone:?}");
    let revoked = status(&dir_a).unwrap()["filter"]["revoked_flows"]
        .as_u64()
        .unwrap();
    assert!(revoked >= 1, "web-1 cut {revoked} flows");

    // Removing a node through GraphQL takes it out of its peers' lists.
    let (_, removed) = server
        .graphql(
            Some(&admin),
            "mutation { removeMeshNode(name: \"db-1\") }",
            Value::Null,
        )
        .await;
    assert_eq!(removed["data"]["removeMeshNode"], true, "{removed}");
    wait_for(
        "db-1 to leave web-1's peers",
        Duration::from_secs(3),
        || wg_peers(&if_a).is_empty(),
    );

    // Bad enrollments change nothing: a malformed key, and web-1's key announced by bob.
    let bob = server.token("bob-cli", "member", Some("bob"));
    let (status_code, body) = server
        .post_json(
            "/v1/mesh/device",
            Some(&bob),
            r#"{"name":"bob-x","public_key":"abc"}"#,
        )
        .await;
    assert_eq!(
        (status_code, body["error"].as_str().unwrap()),
        (
            400,
            "`abc` is not a WireGuard key: a key is 32 bytes in base64, 44 characters ending in `=`"
        )
    );
    let key_a = ok("wg", &["show", &if_a, "public-key"]).trim().to_owned();
    let (status_code, body) = server
        .post_json(
            "/v1/mesh/device",
            Some(&bob),
            &format!(r#"{{"name":"bob-x","public_key":"{key_a}"}}"#),
        )
        .await;
    assert_eq!(
        (status_code, body["error"].as_str().unwrap()),
        (
            409,
            "this WireGuard key belongs to another node: every node must make its own key"
        )
    );

    // wg-quick: bob's phone with the stock apps. `wg setconf` takes the stripped file.
    let out = server.remote(&bob, &["mesh", "config", "--device", "bob-phone"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conf = String::from_utf8(out.stdout).unwrap();
    assert!(
        conf.contains("[Interface]\nPrivateKey = ")
            && conf.contains("# web-1\nPublicKey = ")
            && conf.contains("Endpoint = 10.77.0.1:51820"),
        "{conf}"
    );
    let file = root.join(format!("{if_d}.conf"));
    std::fs::write(&file, &conf).unwrap();
    let stripped = ok("wg-quick", &["strip", file.to_str().unwrap()]);
    let stripped_file = root.join("stripped.conf");
    std::fs::write(&stripped_file, &stripped).unwrap();
    ok("wg", &["setconf", &if_d, stripped_file.to_str().unwrap()]);
    let private = conf
        .lines()
        .find_map(|l| l.strip_prefix("PrivateKey = "))
        .unwrap();
    let public = {
        let mut child = Command::new("wg")
            .arg("pubkey")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{private}\n").as_bytes())
            .unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    };
    assert_eq!(ok("wg", &["show", &if_d, "public-key"]), public);
    let events = server.audit("mesh.node.enroll");
    assert!(events.len() >= 5, "{events:?}");
    assert!(
        !events.iter().any(|e| e["target"] == "mesh-node:clash"),
        "{events:?}"
    );
}

/// Host keys renew by themselves before they expire, on the running interface, and peers
/// follow; a device's key expires and the device leaves every peer list until it signs in
/// again.
#[tokio::test(flavor = "multi_thread")]
async fn host_keys_renew_and_device_keys_expire() {
    needs_peers();
    let config = "[mesh]\nhost_key_ttl = \"6s\"\ndevice_key_ttl = \"16s\"\n";
    let server = TestServer::start(bin(), Backend::Sqlite, config).await;
    let mut lab = Lab::new(7);
    let root = lab.dir.path().to_path_buf();
    let admin = server.token("root", "admin", None);
    for args in [
        &["user", "add", "alice"][..],
        &["group", "add", "eng"],
        &["group", "add-member", "eng", "alice"],
    ] {
        let out = server.admin(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    server.join_host_at(&root, "web-1", &["role=web"], "127.0.0.1:22");
    let policy = policy_dir(
        &root,
        &MESH_POLICY[..MESH_POLICY.find("@id(\"web-db\")").unwrap()],
    );
    let out = server.remote(&admin, &["policy", "apply", policy.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (a, d) = (lab.host("a", 1), lab.host("d", 3));
    let (mtls_port, http_port) = ports(&server);
    lab.relay(&a, mtls_port);
    lab.relay(&d, http_port);
    let (if_a, if_d) = (format!("{}a", lab.prefix), format!("{}d", lab.prefix));
    let data = lab.agent(&server, &a, "web-1", &if_a, 1);
    let alice = server.token("alice-cli", "member", Some("alice"));
    lab.device(&server, &d, "alice-laptop", &if_d, &alice);
    let started = Instant::now();
    wait_for("both nodes' maps", Duration::from_secs(20), || {
        wg_peers_if_up(&if_a).is_some_and(|p| p.len() == 1)
            && wg_peers_if_up(&if_d).is_some_and(|p| p.len() == 1)
    });
    let first = ok("wg", &["show", &if_a, "public-key"]);
    assert_eq!(wg_peers(&if_d), [first.trim()]);
    lab.spawn(
        &a,
        &["python3", "-m", "http.server", "8080", "--bind", "0.0.0.0"],
        &[],
        "http.log",
    );
    let url = format!("http://{}:8080/", mesh_ip(&data));
    let http = |d: &str| http_ok(d, &url);
    wait_for("HTTP through the mesh", Duration::from_secs(15), || {
        http(&d)
    });

    // The host's key (6 s) is renewed at two thirds of its life, without restarting the
    // interface; the device's map follows and traffic flows with the new key.
    wait_for("web-1's key to be renewed", Duration::from_secs(15), || {
        let out = tool("wg", &["show", &if_a, "public-key"]);
        out.status.success() && String::from_utf8_lossy(&out.stdout) != first
    });
    let second = ok("wg", &["show", &if_a, "public-key"]);
    wait_for(
        "the device to learn web-1's new key",
        Duration::from_secs(5),
        || wg_peers(&if_d) == [second.trim()],
    );
    wait_for("HTTP with the new key", Duration::from_secs(10), || {
        http(&d)
    });
    assert!(
        lab.log("agent-web-1.log")
            .contains("mesh: host key renewed; accepted until "),
        "{}",
        lab.log("agent-web-1.log")
    );
    assert!(server.audit("mesh.node.enroll").len() >= 3);

    // The device's key (16 s) expires: it leaves web-1's peers and clears its own.
    let gone = wait_for(
        "alice-laptop's key to expire",
        Duration::from_secs(25),
        || wg_peers(&if_a).is_empty(),
    );
    eprintln!(
        "device left after {:?} (key lifetime 16 s)",
        started.elapsed()
    );
    let _ = gone;
    assert!(started.elapsed() >= Duration::from_secs(14));
    wait_for(
        "the device to clear its peers",
        Duration::from_secs(10),
        || wg_peers(&if_d).is_empty(),
    );
    assert!(
        lab.log("alice-laptop.log")
            .contains("this node is no longer in the mesh"),
        "{}",
        lab.log("alice-laptop.log")
    );
}
