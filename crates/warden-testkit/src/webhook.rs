//! A webhook receiver for tests of notifications: a plain HTTP/1.1 listener on loopback that
//! answers 200 to every POST and keeps what it got.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a receiver got: (path, JSON body) per request, in order.
pub type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// A webhook receiver on loopback: its port, and every POSTed (path, JSON body), in order.
pub async fn webhook_receiver() -> (u16, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the webhook receiver");
    let port = listener.local_addr().expect("receiver address").port();
    let got: Received = Arc::default();
    let seen = got.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(serve(conn, seen.clone()));
        }
    });
    (port, got)
}

/// Reads requests off one connection until it closes.
async fn serve(mut conn: tokio::net::TcpStream, seen: Received) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            if !read_more(&mut conn, &mut buf).await {
                return;
            }
            continue;
        };
        let head = String::from_utf8_lossy(buf.get(..end).unwrap_or_default()).to_string();
        let path = head
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0);
        while buf.len() < end + 4 + length {
            if !read_more(&mut conn, &mut buf).await {
                return;
            }
        }
        let rest = buf.split_off(end + 4);
        let (body, rest) = rest.split_at(length);
        let body: Value = serde_json::from_slice(body).expect("a JSON webhook body");
        seen.lock().expect("receiver lock").push((path, body));
        buf = rest.to_vec();
        if conn
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
    }
}

async fn read_more(conn: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match conn.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            true
        }
    }
}
