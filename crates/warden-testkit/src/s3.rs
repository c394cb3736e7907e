//! A real S3-compatible object store for recordings: moto's server (`moto_server`, from PyPI),
//! on a loopback port, with one bucket. It speaks the S3 REST API that `object_store` uses.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server with a bucket. Killed when dropped.
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The bucket made at start.
    pub bucket: String,
}

impl S3Server {
    /// Starts moto on a free port and makes `bucket`.
    pub fn start(bucket: &str) -> S3Server {
        let port = crate::free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server (./scripts/test.sh installs moto[server] with pip)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto_server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let server = S3Server {
            child,
            endpoint,
            bucket: bucket.to_owned(),
        };
        server.boto3("s3.create_bucket(Bucket=bucket)", &[], None);
        server
    }

    /// Runs `code` with boto3 (installed with moto), an S3 client `s3` for this server and
    /// `bucket` and `args` (strings) in scope; stdin is `input`. Returns stdout.
    fn boto3(&self, code: &str, args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
        use std::io::Write;
        let script = format!(
            "import sys, boto3\n\
             s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', \
             aws_access_key_id='testing', aws_secret_access_key='testing')\n\
             bucket = sys.argv[2]\nargs = sys.argv[3:]\n{code}\n"
        );
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&self.endpoint)
            .arg(&self.bucket)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 with boto3 (./scripts/test.sh installs moto[server])");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(input.unwrap_or_default())
            .expect("write stdin");
        drop(stdin);
        let out = child.wait_with_output().expect("boto3");
        assert!(
            out.status.success(),
            "boto3: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// The environment a Warden process needs to reach the bucket (test credentials).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
    }

    /// The object at `key` in the bucket, if there is one.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let out = self.boto3(
            "try:\n    body = s3.get_object(Bucket=bucket, Key=args[0])['Body'].read()\n\
             except s3.exceptions.NoSuchKey:\n    sys.exit(0)\n\
             sys.stdout.buffer.write(b'+' + body)",
            &[key],
            None,
        );
        out.strip_prefix(b"+").map(<[u8]>::to_vec)
    }

    /// Writes `body` at `key` in the bucket.
    pub fn put(&self, key: &str, body: &[u8]) {
        self.boto3(
            "s3.put_object(Bucket=bucket, Key=args[0], Body=sys.stdin.buffer.read())",
            &[key],
            Some(body),
        );
    }
}
impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
