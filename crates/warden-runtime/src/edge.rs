//! Edge protection for every listener: a connection cap, a header read timeout (slowloris),
//! per-source rate limits with `429` and `Retry-After`, and the request id, log line and
//! metrics every request gets. Request timeouts and body limits are tower layers
//! that the server's routes (`warden-server`) put around each listener.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;
use tracing::Instrument;

use warden_model::forwarded::TrustedProxies;

use crate::config::Limits;
use crate::metrics::{ListenerLabels, Metrics, RequestLabels, RouteLabels};

/// How long open connections get to finish after shutdown begins.
const DRAIN: Duration = Duration::from_secs(10);

/// The request id of the request being handled: taken from a well-formed `x-request-id`
/// header, or made here.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The client certificate a mutual-TLS connection presented (its first, leaf certificate).
#[derive(Debug, Clone)]
pub struct PeerCertificate(pub Arc<rustls_pki_types::CertificateDer<'static>>);

/// A listener the edge can serve.
pub trait Accept: Send + 'static {
    /// What `accept` yields.
    type Raw: Send + 'static;
    /// What HTTP runs over.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The next connection, with the peer's address when it has one (not on a unix socket).
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Raw, Option<SocketAddr>)>> + Send;
    /// Finishes setting the connection up (a PROXY protocol header when the peer is a
    /// trusted proxy, then a TLS handshake), in the connection's own task so a slow client
    /// holds up no one else. Returns the client a PROXY header named.
    fn establish(
        &self,
        raw: Self::Raw,
        proxied: bool,
    ) -> impl Future<Output = io::Result<Established<Self::Io>>> + Send + 'static;
}

/// A connection ready for HTTP: its stream, the client certificate it presented, and the
/// client a trusted proxy's PROXY header named.
pub type Established<Io> = (Io, Option<PeerCertificate>, Option<IpAddr>);

/// Reads the PROXY protocol header (v1 or v2) a trusted proxy may send first, consuming it;
/// `None` when the connection's own bytes begin at once, or the header names no client.
pub async fn proxy_header(stream: &mut tokio::net::TcpStream) -> io::Result<Option<IpAddr>> {
    use tokio::io::AsyncReadExt;
    use warden_model::proxy_protocol::{Header, V2_MAX, parse};
    let mut buf = vec![0u8; V2_MAX];
    let read = async {
        loop {
            let n = stream.peek(&mut buf).await?;
            match parse(buf.get(..n).unwrap_or_default()) {
                Header::Absent => return Ok(None),
                Header::Invalid => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "invalid PROXY protocol header",
                    ));
                }
                Header::Present { len, client } => {
                    let mut header = vec![0u8; len];
                    stream.read_exact(&mut header).await?;
                    return Ok(client);
                }
                Header::Incomplete if n == 0 => return Ok(None),
                Header::Incomplete => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no PROXY protocol header in 10 s"))?
}

impl Accept for TcpListener {
    type Raw = tokio::net::TcpStream;
    type Io = tokio::net::TcpStream;
    async fn accept(&self) -> io::Result<(Self::Io, Option<SocketAddr>)> {
        let (stream, peer) = TcpListener::accept(self).await?;
        stream.set_nodelay(true)?;
        Ok((stream, Some(peer)))
    }
    #[expect(
        clippy::manual_async_fn,
        reason = "the future must not borrow the listener: it runs in the connection's own task"
    )]
    fn establish(
        &self,
        mut raw: Self::Raw,
        proxied: bool,
    ) -> impl Future<Output = io::Result<Established<Self::Io>>> + Send + 'static {
        async move {
            let client = if proxied {
                proxy_header(&mut raw).await?
            } else {
                None
            };
            Ok((raw, None, client))
        }
    }
}

impl Accept for UnixListener {
    type Raw = tokio::net::UnixStream;
    type Io = tokio::net::UnixStream;
    async fn accept(&self) -> io::Result<(Self::Io, Option<SocketAddr>)> {
        let (stream, _) = UnixListener::accept(self).await?;
        Ok((stream, None))
    }
    fn establish(
        &self,
        raw: Self::Raw,
        _proxied: bool,
    ) -> impl Future<Output = io::Result<Established<Self::Io>>> + Send + 'static {
        std::future::ready(Ok((raw, None, None)))
    }
}

/// Serves `router` on `listener` until `shutdown` flips, then drains open connections.
/// Requests from a `trusted` proxy carry the client it names as their `ConnectInfo`.
pub async fn serve<L: Accept>(
    listener: L,
    name: &'static str,
    router: Router,
    limits: Limits,
    trusted: Arc<TrustedProxies>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let sources = Arc::new(SourceSlots::new(limits.per_source_connections));
    let open = metrics
        .connections
        .get_or_create(&ListenerLabels { listener: name })
        .clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let (io, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(listener = name, error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // A trusted proxy speaks for many clients: only the global cap holds it.
        let source_slot = match peer.map(|p| p.ip()).filter(|ip| !trusted.trusts(*ip)) {
            Some(ip) => match sources.take(ip) {
                Some(slot) => Some(slot),
                None => {
                    metrics.reject(name, "per_source_connections");
                    drop(io);
                    continue;
                }
            },
            None => None,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.reject(name, "max_connections");
            drop(io);
            continue;
        };
        let router = router.clone();
        let proxied = peer.is_some_and(|p| trusted.trusts(p.ip()));
        let establish = listener.establish(io, proxied);
        let watcher = graceful.watcher();
        let header_timeout = limits.header_timeout;
        let metrics = metrics.clone();
        let open = open.clone();
        let trusted = trusted.clone();
        tokio::spawn(async move {
            let _source_slot = source_slot;
            let (io, certificate, named) = match establish.await {
                Ok(established) => established,
                Err(err) => {
                    metrics.reject(name, "connection_setup");
                    tracing::info!(listener = name, peer = ?peer, error = %err, "connection setup failed");
                    drop(slot);
                    return;
                }
            };
            // A client named by a PROXY header stands where the proxy's address stood.
            let peer = named.map(|ip| SocketAddr::new(ip, 0)).or(peer);
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                if let Some(peer) = peer {
                    let client = client_of(&trusted, peer, req.headers());
                    req.extensions_mut().insert(ConnectInfo(client));
                }
                if let Some(certificate) = &certificate {
                    req.extensions_mut().insert(certificate.clone());
                }
                router.clone().oneshot(req)
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(io), service);
            let conn = watcher.watch(conn);
            open.inc();
            if let Err(err) = conn.await {
                if err.is_timeout() {
                    metrics.reject(name, "header_timeout");
                } else {
                    tracing::debug!(listener = name, error = %err, "connection ended with an error");
                }
            }
            open.dec();
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => {
            tracing::warn!(listener = name, "connections still open after {DRAIN:?}; closing them");
        }
    }
}

/// The address a request is from: the peer, or the client a trusted proxy names (port 0:
/// the proxy does not say it reliably).
fn client_of(trusted: &TrustedProxies, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
    if !trusted.trusts(peer.ip()) {
        return peer;
    }
    // A value that is not text makes the whole header unbelievable: the proxy stands.
    let values: Option<Vec<&str>> = headers
        .get_all(trusted.header().name())
        .iter()
        .map(|v| v.to_str().ok())
        .collect();
    let Some(values) = values else {
        return peer;
    };
    let client = trusted.client(peer.ip(), &values);
    if client == peer.ip() {
        peer
    } else {
        SocketAddr::new(client, 0)
    }
}

/// Connections (or uploads) open per source (IPv6 by /64), so one source cannot hold every
/// slot.
#[derive(Debug)]
pub struct SourceSlots {
    per_source: usize,
    open: Mutex<BTreeMap<IpAddr, usize>>,
}

/// One source's connection; gives its slot back when dropped.
#[derive(Debug)]
pub struct SourceSlot {
    slots: Arc<SourceSlots>,
    key: IpAddr,
}

impl SourceSlots {
    /// Slots for `per_source` uploads at once from each source.
    pub fn new(per_source: usize) -> SourceSlots {
        SourceSlots {
            per_source,
            open: Mutex::new(BTreeMap::new()),
        }
    }

    /// A slot for `ip`, or `None` when its sources already hold `per_source` connections.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Option<SourceSlot> {
        let key = source_key(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key).or_insert(0);
        if *count >= self.per_source {
            return None;
        }
        *count += 1;
        Some(SourceSlot {
            slots: self.clone(),
            key,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self
            .slots
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

type KeyedLimiter = RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>;

/// Whole seconds until a refused budget allows again, rounded up.
fn seconds_until(not_until: &governor::NotUntil<<DefaultClock as Clock>::Instant>) -> u64 {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}
type TokenKeyedLimiter = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock>;

/// Per-token request budget, asked once the token is known: many sources sharing one token (or
/// one proxy in front of many tokens) are held to what the token may do.
#[derive(Debug)]
pub struct TokenLimiter {
    limiter: TokenKeyedLimiter,
}

impl TokenLimiter {
    /// `None` when `rps` is 0 (off).
    pub fn new(rps: u32, burst: u32) -> Option<Arc<TokenLimiter>> {
        let rps = NonZeroU32::new(rps)?;
        let burst = NonZeroU32::new(burst).unwrap_or(rps);
        Some(Arc::new(TokenLimiter {
            limiter: RateLimiter::keyed(Quota::per_second(rps).allow_burst(burst)),
        }))
    }

    /// `Err(seconds to wait)` when the token with this id is over its budget.
    pub fn check(&self, token_id: &str) -> Result<(), u64> {
        self.limiter
            .check_key(&token_id.to_owned())
            .map_err(|not_until| seconds_until(&not_until).max(1))
    }

    /// Forgets tokens that have been quiet.
    pub fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// Per-source request budget. IPv6 sources are grouped by /64, the block one host gets.
#[derive(Debug)]
pub struct SourceLimiter {
    limiter: KeyedLimiter,
}

impl SourceLimiter {
    /// `None` when rate limiting is off (`per_source_rps = 0`).
    pub fn new(limits: &Limits) -> Option<Arc<SourceLimiter>> {
        let rps = NonZeroU32::new(limits.per_source_rps)?;
        let burst = NonZeroU32::new(limits.per_source_burst).unwrap_or(rps);
        let quota = Quota::per_second(rps).allow_burst(burst);
        Some(Arc::new(SourceLimiter {
            limiter: RateLimiter::keyed(quota),
        }))
    }

    /// `Err(seconds to wait)` when `source` is over its budget.
    pub fn check(&self, source: IpAddr) -> Result<(), u64> {
        self.limiter
            .check_key(&source_key(source))
            .map_err(|not_until| seconds_until(&not_until))
    }

    /// Forgets sources that have been quiet, so the table does not grow without bound.
    pub fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// State for the edge middleware of one listener.
#[derive(Debug, Clone)]
pub struct EdgeState {
    /// The listener's name in logs and metrics: `http`, `admin` or `agent_mtls`.
    pub listener: &'static str,
    /// The per-source rate limiter (`None`: off).
    pub limiter: Option<Arc<SourceLimiter>>,
    /// Where requests and refusals are counted.
    pub metrics: Arc<Metrics>,
}

/// Refuses a source over its budget with 429 and `Retry-After`.
pub async fn rate_limit(State(edge): State<EdgeState>, req: Request, next: Next) -> Response {
    let (Some(limiter), Some(ConnectInfo(peer))) = (
        &edge.limiter,
        req.extensions().get::<ConnectInfo<SocketAddr>>(),
    ) else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    let scim = path.starts_with("/scim/v2/");
    // Only the resources authenticate their caller and charge it a budget; the discovery
    // documents and unknown paths stay on the source's.
    let resource = ["/scim/v2/Users", "/scim/v2/Groups", "/scim/v2/.search"]
        .iter()
        .any(|p| {
            path.strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        });
    if resource && bearer_shaped(req.headers()) {
        // Charged after authentication: to the token if it is one, to the source if not.
        return next.run(req).await;
    }
    match limiter.check(peer.ip()) {
        Ok(()) => next.run(req).await,
        Err(wait) if scim => {
            edge.metrics.reject(edge.listener, "rate_limit");
            scim_too_many(
                format!("too many requests from {}: retry after {wait}s", peer.ip()),
                wait,
            )
        }
        Err(wait) => {
            edge.metrics.reject(edge.listener, "rate_limit");
            let body = axum::Json(serde_json::json!({
                "error": format!("too many requests from {}: retry after {wait}s", peer.ip())
            }));
            let mut resp = (StatusCode::TOO_MANY_REQUESTS, body).into_response();
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from(wait.max(1)));
            resp
        }
    }
}

/// Whether the request carries `Authorization: Bearer` with something shaped like an API
/// token (shape only: it is checked later, against the store).
fn bearer_shaped(headers: &HeaderMap) -> bool {
    crate::request::bearer(headers)
        .is_some_and(|t| warden_identity::PresentedToken::parse(t).is_ok())
}

/// Gives the request an id, runs it inside a span carrying that id (so every log line of the
/// request has it), logs its end and counts it.
pub async fn observe(State(edge): State<EdgeState>, mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_request_id(v))
        .map_or_else(|| uuid::Uuid::now_v7().simple().to_string(), str::to_owned);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = method_label(req.method());
    let source = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id, listener = edge.listener);
    let start = Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    let elapsed = start.elapsed();
    let status = resp.status();
    span.in_scope(|| {
        tracing::info!(
            method = %method,
            route = %route,
            status = status.as_u16(),
            source = source.map(|s| s.to_string()),
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    });
    let metrics = &edge.metrics;
    metrics
        .requests
        .get_or_create(&RequestLabels {
            route: route.clone(),
            method,
            status: status.as_u16(),
        })
        .inc();
    metrics
        .latency
        .get_or_create(&RouteLabels { route })
        .observe(elapsed.as_secs_f64());
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => metrics.reject(edge.listener, "body_too_large"),
        StatusCode::REQUEST_TIMEOUT => metrics.reject(edge.listener, "request_timeout"),
        _ => {}
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", value);
    }
    resp
}

/// The metrics label of a method: the standard ones by name, anything else folded into one,
/// so a client cannot grow `/metrics` by making methods up.
fn method_label(method: &axum::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// Accepts caller-chosen ids only if they cannot forge log structure.
fn valid_request_id(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The media type of SCIM 2.0 documents (RFC 7644, section 8.1).
pub const SCIM_JSON: &str = "application/scim+json; charset=utf-8";

/// A SCIM document (`application/scim+json`) with `status`.
pub fn scim_json(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static(SCIM_JSON),
    );
    resp
}

/// A SCIM error document, with the status it names.
pub fn scim_error(e: &warden_scim::ScimError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    scim_json(status, &e.to_json())
}

/// 429 as a SCIM error document with `Retry-After`: SCIM clients read these, not bare 429s.
pub fn scim_too_many(detail: String, wait: u64) -> Response {
    let mut resp = scim_error(&warden_scim::ScimError {
        status: 429,
        scim_type: None,
        detail,
    });
    resp.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        HeaderValue::from(wait.max(1)),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_sources_share_a_budget_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(source_key(a), source_key(b));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(source_key(mapped), "127.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn limiter_refuses_past_the_burst_and_says_when_to_retry() {
        let limits = Limits {
            per_source_rps: 1,
            per_source_burst: 2,
            ..Limits::default()
        };
        let limiter = SourceLimiter::new(&limits).unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(limiter.check(ip).is_ok());
        assert!(limiter.check(ip).is_ok());
        assert_eq!(limiter.check(ip), Err(1));
        assert!(limiter.check("127.0.0.2".parse().unwrap()).is_ok());
        let off = Limits {
            per_source_rps: 0,
            ..Limits::default()
        };
        assert!(SourceLimiter::new(&off).is_none());
    }

    #[test]
    fn one_source_cannot_take_every_connection() {
        let slots = Arc::new(SourceSlots::new(2));
        let a = slots.take("127.0.0.1".parse().unwrap()).unwrap();
        let _b = slots.take("127.0.0.1".parse().unwrap()).unwrap();
        assert!(slots.take("127.0.0.1".parse().unwrap()).is_none());
        assert!(slots.take("127.0.0.2".parse().unwrap()).is_some());
        drop(a);
        assert!(slots.take("127.0.0.1".parse().unwrap()).is_some());
    }

    #[test]
    fn methods_fold_into_bounded_labels() {
        assert_eq!(method_label(&axum::http::Method::GET), "GET");
        let made_up = axum::http::Method::from_bytes(b"FROB123").unwrap();
        assert_eq!(method_label(&made_up), "other");
    }

    #[test]
    fn request_ids_are_checked() {
        assert!(valid_request_id("abc-123"));
        assert!(!valid_request_id("a\"b"));
        assert!(!valid_request_id(""));
        assert!(!valid_request_id(&"a".repeat(65)));
    }
}
