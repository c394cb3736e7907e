use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The receiver: Python's standard HTTP server decoding each request with the OpenTelemetry
/// project's own protobuf definitions (PyPI `opentelemetry-proto`), and writing every log
/// record it accepts as one JSON line.
const RECEIVER: &str = r#"
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest, ExportLogsServiceResponse

out = open(sys.argv[2], "a")

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path != "/v1/logs" or self.headers["Content-Type"] != "application/x-protobuf":
            self.send_response(400); self.end_headers(); return
        request = ExportLogsServiceRequest.FromString(body)
        for rl in request.resource_logs:
            resource = {a.key: a.value.string_value for a in rl.resource.attributes}
            for sl in rl.scope_logs:
                for r in sl.log_records:
                    attrs = {}
                    for a in r.attributes:
                        attrs[a.key] = a.value.int_value if a.value.HasField("int_value") else a.value.string_value
                    out.write(json.dumps({"resource": resource, "scope": sl.scope.name, "time": r.time_unix_nano,
                        "severity": r.severity_text, "severity_number": r.severity_number, "event_name": r.event_name,
                        "body": r.body.string_value, "attributes": attrs}) + "\n")
        out.flush()
        reply = ExportLogsServiceResponse().SerializeToString()
        self.send_response(200); self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply))); self.end_headers(); self.wfile.write(reply)
    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"#;

/// A real OTLP/HTTP logs receiver on a loopback port (see [`RECEIVER`]).
#[derive(Debug)]
pub struct OtlpReceiver {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    out: PathBuf,
}

impl OtlpReceiver {
    /// Starts the receiver in `dir`. Fails the test when python3 or `opentelemetry-proto` is
    /// missing.
    pub fn start(dir: &Path) -> OtlpReceiver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let script = dir.join("otlp_receiver.py");
        std::fs::write(&script, RECEIVER).expect("write receiver");
        let out = dir.join("otlp_records.jsonl");
        let child = Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("otlp_receiver.err")).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("python3 is required for the OTLP tests: {e}"));
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let err = std::fs::read_to_string(dir.join("otlp_receiver.err")).unwrap_or_default();
            assert!(
                start.elapsed() < Duration::from_secs(15) && !err.contains("Error"),
                "the OTLP receiver did not start (pip install opentelemetry-proto): {err}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        OtlpReceiver { child, port, out }
    }

    /// The log records received so far.
    pub fn records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
