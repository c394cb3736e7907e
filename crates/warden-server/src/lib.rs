//! Warden's control plane, as its composition root: [`Server::start`] reads nothing but the
//! configuration, takes the data directory's lock, opens the store and the services of
//! `warden-runtime`, and binds the listeners; [`Server::run`] wires the services to the
//! routes (`http.rs`: the public listener, the admin socket and the mutual-TLS listener, with
//! the APIs of `warden-api` and the pages of `warden-web`), runs the background tasks, and shuts
//! down in order. `warden server` is the one then the other; `warden proxy` is
//! [`ProxyServer`].
//!
//! # Threat model: the server's edge
//!
//! **What the server trusts.**
//! - Whoever can open the admin socket (mode 0600 in a 0700 data directory) is the operator,
//!   and the policy is never asked for them.
//! - The peers listed in `trusted_proxies`, for the client address they report (the one
//!   configured header, or the PROXY protocol). From any other peer those are ignored, or
//!   refused.
//! - A client certificate on the mutual-TLS listener that chains to Warden's own CA, names a
//!   joined host by its SPIFFE id, and has an unrevoked serial.
//! - The configuration file and environment, and the KEK file.
//!
//! **What an attacker controls.**
//! - Anyone who can reach the public listener: how many connections they open and how slowly
//!   they send headers (global and per-source caps, a header timeout), how many requests
//!   (per-source and per-token budgets, `429` with `Retry-After`), every header and body
//!   (bodies bounded, and read only after the bearer token on `/graphql` and imports), and
//!   every GraphQL document (depth, complexity and a count of every selection checked before
//!   it runs).
//! - The sign-in steps before anyone is known: 64 KiB bodies, and answers that do not tell
//!   whether a name exists.
//! - A holder of a token of a narrow role: what the policy would let its person do is cut to
//!   the role's ceiling.
//! - Metrics labels: unknown methods and unmatched routes are folded into one label each.
//!
//! **What it promises.**
//! - Every route that touches data authenticates first and asks the policy engine; every
//!   refusal is recorded, unauthenticated ones sampled at 10 a second (the rest counted) so a
//!   flood cannot grow the audit log without bound.
//! - A caller learns the same generic 401 whatever was wrong with their credential.
//! - Every listener's work per connection and per request is bounded in time and bytes.
//!
//! **What it does not promise.**
//! - TLS on the public listener: put a TLS-terminating proxy in front of it (and list it in
//!   `trusted_proxies`), or keep it on a private network.
//! - Availability against a flood larger than the machine: the caps keep one source from
//!   starving others, not a botnet from filling the link.

mod http;
mod mtls;
mod standalone;

use std::fs::{DirBuilder, File, OpenOptions};
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use warden_api::agent as agent_api;
use warden_runtime::request::{App, Services};
use warden_runtime::{edge, integrity, mesh, metrics, recordings, sink, ssh_gate, timers};
use warden_store::Store;
use warden_vuln_store::VulnStore;
use warden_web::sign_in;

pub use agent_api::{AgentCredentials, JoinRequest, RenewRequest};
pub use config::{Config, ConfigError, Overrides};
pub use edge::RequestId;
pub use standalone::ProxyServer;
pub use warden_api::graphql;
pub use warden_api::mesh::{EnrollRequest, Enrolled, Ranges};
pub use warden_runtime::mesh::MeshMap;
pub use warden_runtime::{StartError, audit, ca, config, logging, policy};

use crate::config::io_cause;
use crate::edge::{EdgeState, SourceLimiter};
use crate::metrics::Metrics;

/// The admin socket of the server whose data directory is `data_dir`.
pub fn admin_socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.sock")
}

/// A server with its listeners bound and its database migrated: ready to serve.
#[derive(Debug)]
pub struct Server {
    config: Config,
    store: Arc<Store>,
    http: TcpListener,
    mtls: mtls::MtlsListener,
    mtls_address: Arc<str>,
    sign_in: Arc<sign_in::SignIn>,
    admin: UnixListener,
    admin_path: PathBuf,
    audit: audit::AuditLog,
    authorities: ca::Authorities,
    policy: Arc<policy::Engine>,
    /// The proxy's listener, or why the proxy is off (its recordings could not be kept).
    ssh_proxy: Result<TcpListener, String>,
    recordings: recordings::Recordings,
    sinks: Vec<sink::Prepared>,
    /// Held for the server's life: a second server on the same data directory fails to start.
    _lock: File,
}

impl Server {
    /// Prepares the data directory, takes its lock, connects to and migrates the database,
    /// and binds the listeners.
    pub async fn start(mut config: Config) -> Result<Server, StartError> {
        let lock = lock_data_dir(&config.data_dir)?;
        let sinks = sink::prepare(&config.audit.sinks)?;
        let (store, authorities, policy, key) = open_core(&config, true).await?;
        let key =
            key.ok_or_else(|| StartError("the audit signing key was not loaded".to_owned()))?;
        let audit = audit::AuditLog::new(store.clone(), key, Some(&config.data_dir));
        let recordings = recordings::Recordings::open(&config.ssh.recordings)?;
        // Fail closed: no proxy listener when what it records could not be kept.
        let recordings_ready = recordings.check().await;
        if recordings_ready.is_ok() {
            recordings.publish_leftovers().await;
        }
        let http = TcpListener::bind(config.listen_http).await.map_err(|e| {
            StartError(format!(
                "cannot listen on {}: {}",
                config.listen_http,
                io_cause(&e)
            ))
        })?;
        // A public URL derived from `--listen HOST:0` names the port actually bound.
        if config.public_url.port() == Some(0)
            && let Ok(bound) = http.local_addr()
        {
            let _ = config.public_url.set_port(Some(bound.port()));
        }
        let mtls_listener = TcpListener::bind(config.listen_agent_mtls)
            .await
            .map_err(|e| {
                StartError(format!(
                    "cannot listen on {} (listen.agent_mtls): {}",
                    config.listen_agent_mtls,
                    io_cause(&e)
                ))
            })?;
        let ssh_proxy = match recordings_ready {
            Ok(()) => Ok(bind_ssh_proxy(&config).await?),
            Err(e) => {
                tracing::error!(error = %e, "the ssh proxy does not start");
                Err(e.to_string())
            }
        };
        let mtls_bound = mtls_listener
            .local_addr()
            .map_err(|e| StartError(format!("cannot read listen address: {}", io_cause(&e))))?;
        let public_host = config.public_url.host_str();
        let tls = mtls::Tls::new(
            authorities.clone(),
            mtls::server_names(mtls_bound, public_host),
        )
        .await?;
        let mtls_address = agent_api::mtls_address(mtls_bound, public_host);
        let sign_in = Arc::new(
            sign_in::SignIn::new(&config.identity, &config.public_url).map_err(StartError)?,
        );
        let admin_path = admin_socket_path(&config.data_dir);
        // The lock is ours, so any socket file left here belongs to a server that is gone.
        match std::fs::remove_file(&admin_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StartError(format!(
                    "cannot remove stale admin socket {}: {}",
                    admin_path.display(),
                    io_cause(&e)
                )));
            }
        }
        let admin = UnixListener::bind(&admin_path).map_err(|e| {
            StartError(format!(
                "cannot create admin socket {}: {}",
                admin_path.display(),
                io_cause(&e)
            ))
        })?;
        std::fs::set_permissions(&admin_path, std::fs::Permissions::from_mode(0o600)).map_err(
            |e| {
                StartError(format!(
                    "cannot restrict admin socket {}: {}",
                    admin_path.display(),
                    io_cause(&e)
                ))
            },
        )?;
        Ok(Server {
            config,
            store,
            http,
            mtls: mtls::MtlsListener {
                listener: mtls_listener,
                tls,
            },
            mtls_address,
            sign_in,
            admin,
            admin_path,
            audit,
            authorities,
            policy,
            ssh_proxy,
            recordings,
            sinks,
            _lock: lock,
        })
    }

    /// The address the SSH proxy listens on, or why it is off.
    pub fn ssh_proxy_addr(&self) -> Result<SocketAddr, StartError> {
        match &self.ssh_proxy {
            Ok(listener) => listener
                .local_addr()
                .map_err(|e| StartError(format!("cannot read listen address: {}", io_cause(&e)))),
            Err(why) => Err(StartError(why.clone())),
        }
    }

    /// The address the HTTP listener is bound to (useful with port 0).
    pub fn http_addr(&self) -> Result<SocketAddr, StartError> {
        self.http
            .local_addr()
            .map_err(|e| StartError(format!("cannot read listen address: {}", io_cause(&e))))
    }

    /// The address the mutual-TLS listener is bound to.
    pub fn mtls_addr(&self) -> Result<SocketAddr, StartError> {
        self.mtls
            .listener
            .local_addr()
            .map_err(|e| StartError(format!("cannot read listen address: {}", io_cause(&e))))
    }

    /// With `--dev` and no user yet: makes the first admin, `admin` (in group `admins`), and
    /// returns a one-time enrollment link for their passkey. `None` otherwise.
    pub async fn dev_first_admin(&self) -> Result<Option<String>, StartError> {
        if !self.config.dev {
            return Ok(None);
        }
        let err = |e: warden_store::StoreError| StartError(e.to_string());
        let page = warden_store::PageRequest {
            after: None,
            before: None,
            limit: 1,
            from_end: false,
        };
        if !self.store.users(&page).await.map_err(err)?.items.is_empty() {
            return Ok(None);
        }
        let now = warden_model::Timestamp::from_system(std::time::SystemTime::now());
        let ctx = warden_store::AuditContext {
            actor: warden_model::Actor::System,
            request_id: "dev-first-admin".to_owned(),
            source: None,
            now,
        };
        let name = warden_model::UserName::new("admin").map_err(|e| StartError(e.to_string()))?;
        let group =
            warden_model::GroupName::new("admins").map_err(|e| StartError(e.to_string()))?;
        let new = warden_store::NewUser {
            name: name.clone(),
            display_name: Some("First admin".to_owned()),
            email: None,
        };
        self.store.create_user(&ctx, new).await.map_err(err)?;
        self.store
            .create_group(&ctx, group.clone(), "Warden administrators".to_owned())
            .await
            .map_err(err)?;
        self.store
            .add_group_member(&ctx, &group, &name)
            .await
            .map_err(err)?;
        let issued = warden_identity::issue_enrollment_token(&mut rand::rngs::OsRng);
        let expires = now.plus(self.config.identity.enrollment_link_ttl);
        self.store
            .create_enrollment_link(&ctx, &name, &issued.id, &issued.secret_hash, expires)
            .await
            .map_err(err)?;
        Ok(Some(format!(
            "{}/enroll/{}",
            self.config.public_url.as_str().trim_end_matches('/'),
            issued.token.expose()
        )))
    }

    /// The audit log.
    pub fn audit(&self) -> &audit::AuditLog {
        &self.audit
    }

    /// The admin socket's path.
    pub fn admin_socket(&self) -> &Path {
        &self.admin_path
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Serves until `shutdown` completes, then stops accepting, lets open requests finish
    /// (up to 10 s), closes the database and removes the admin socket.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let metrics = Arc::new(Metrics::new());
        let sinks = sink::spawn_all(self.sinks, &self.store, &metrics);
        let audit_config = &self.config.audit;
        let retention = audit_config.retention.map(|keep| {
            let dir = audit_config.archive_dir.clone();
            tokio::spawn(
                self.audit
                    .clone()
                    .run_retention(keep, dir, audit_config.retention_check),
            )
        });
        let ssh_proxy = match &self.ssh_proxy {
            Err(_) => None,
            Ok(_) => match ssh_gate::proxy(
                &self.store,
                &self.authorities,
                &self.policy,
                &self.recordings,
                &self.config.ssh,
                "server",
            ) {
                Ok(proxy) => Some(proxy),
                Err(e) => {
                    tracing::error!(error = %e, "the ssh proxy cannot start");
                    None
                }
            },
        };
        let mesh = mesh::Mesh::new(self.config.mesh.clone());
        let services = Services {
            audit: self.audit.clone(),
            authorities: self.authorities.clone(),
            policy: self.policy.clone(),
            metrics: metrics.clone(),
            agent: self.config.agent.clone(),
            mtls_address: self.mtls_address.clone(),
            public_url: self.config.public_url.as_str().trim_end_matches('/').into(),
            vuln: self.config.vuln.clone(),
            security_txt: self.config.security_txt.clone().map(Arc::new),
            mesh: mesh.clone(),
            scim: Arc::new(self.config.scim.clone()),
            anonymous: Arc::default(),
            source_budget: SourceLimiter::new(&self.config.limits),
            token_budget: edge::TokenLimiter::new(
                self.config.limits.per_token_rps,
                self.config.limits.per_token_burst,
            ),
            scim_budget: edge::TokenLimiter::new(
                self.config.scim.per_token_rps,
                self.config.scim.per_token_burst,
            ),
            imports: Arc::new(edge::SourceSlots::new(
                self.config.limits.imports_per_source,
            )),
            recordings: self.recordings.clone(),
            compliance: warden_runtime::compliance::Limits::of(&self.config),
        };
        let app = App::new(self.store.clone(), services);
        let kept = warden_runtime::compliance::Kept::default();
        let web = warden_web::Web {
            app: app.clone(),
            api: graphql::Api::new(
                graphql::schema(
                    self.store.clone(),
                    self.audit.clone(),
                    self.authorities.clone(),
                    self.policy.clone(),
                    ssh_proxy.clone(),
                    self.recordings.clone(),
                    kept.clone(),
                    &self.config,
                ),
                self.store.clone(),
            ),
            accounts: warden_api::accounts::Accounts::new(self.store.clone()),
            sign_in: self.sign_in.clone(),
            settings: Arc::new(warden_web::console::Settings::new(&self.config)),
        };
        let limits = self.config.limits.clone();
        let limiter = app.source_budget.clone();
        let app_budgets = (app.token_budget.clone(), app.scim_budget.clone());
        let http_edge = EdgeState {
            listener: "http",
            limiter: limiter.clone(),
            metrics: metrics.clone(),
        };
        let admin_edge = EdgeState {
            listener: "admin",
            limiter: None,
            metrics: metrics.clone(),
        };
        let (stop, stopped) = watch::channel(false);
        let trusted = Arc::new(self.config.trusted_proxies.clone());
        let http = tokio::spawn(edge::serve(
            self.http,
            "http",
            http::public_router(web.clone(), http_edge, &limits),
            limits.clone(),
            trusted.clone(),
            metrics.clone(),
            stopped.clone(),
        ));
        let mtls_edge = EdgeState {
            listener: "agent_mtls",
            limiter: limiter.clone(),
            metrics: metrics.clone(),
        };
        let tls_refresh = tokio::spawn(self.mtls.tls.clone().run_refresh());
        let policy_refresh = tokio::spawn(self.policy.clone().run_refresh(self.store.clone()));
        let listen = tokio::spawn(self.store.clone().listen());
        let mesh_task = tokio::spawn(mesh.run(self.store.clone(), self.policy.clone()));
        let timers = tokio::spawn(timers::run(
            self.store.clone(),
            self.config.vuln.sla.clone(),
            self.config.review_schedules.clone(),
            self.config.vuln.figures_every,
        ));
        let monitor = tokio::spawn(warden_runtime::compliance::monitor(
            self.store.clone(),
            self.audit.clone(),
            self.recordings.clone(),
            warden_runtime::compliance::Limits::of(&self.config),
            kept,
            self.config.compliance_monitor_every,
        ));
        let proxy = match (ssh_proxy, self.ssh_proxy) {
            (Some(p), Ok(listener)) => Some(tokio::spawn(p.serve(listener, stopped.clone()))),
            _ => None,
        };
        let mtls = tokio::spawn(edge::serve(
            self.mtls,
            "agent_mtls",
            http::mtls_router(app.clone(), mtls_edge, &limits),
            limits.clone(),
            trusted,
            metrics.clone(),
            stopped.clone(),
        ));
        let admin = tokio::spawn(edge::serve(
            self.admin,
            "admin",
            http::admin_router(web, admin_edge, &limits),
            limits,
            Arc::default(),
            metrics,
            stopped,
        ));
        let budgets = (app_budgets.0, app_budgets.1);
        let sweeper = Some(tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                if let Some(limiter) = &limiter {
                    limiter.sweep();
                }
                for budget in [&budgets.0, &budgets.1].into_iter().flatten() {
                    budget.sweep();
                }
            }
        }));
        let signer = tokio::spawn(
            self.audit
                .clone()
                .run_signer(self.config.audit.checkpoint_interval),
        );

        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
        tls_refresh.abort();
        policy_refresh.abort();
        listen.abort();
        timers.abort();
        monitor.abort();
        mesh_task.abort();
        if let Some(proxy) = proxy {
            proxy.abort();
        }
        for task in [http, mtls, admin] {
            if let Err(err) = task.await {
                tracing::error!(error = %err, "listener task failed");
            }
        }
        if let Some(sweeper) = sweeper {
            sweeper.abort();
        }
        signer.abort();
        for task in sinks.into_iter().chain(retention) {
            task.abort();
        }
        // A last checkpoint, so everything written before shutdown is signed.
        if let Err(err) = self.audit.sign_now().await {
            tracing::error!(error = %err, "cannot sign the final audit checkpoint");
        }
        self.store.close().await;
        let _ = std::fs::remove_file(&self.admin_path);
        tracing::info!("stopped");
    }
}

/// What every process that decides access needs: the migrated store, the CAs (opened under
/// the KEK) and the policy engine.
/// What `open_core` opens: the store, the CAs, the policy engine and, for a server that signs
/// the log, its signing key.
type Core = (
    Arc<Store>,
    ca::Authorities,
    Arc<policy::Engine>,
    Option<warden_audit::SigningKey>,
);

async fn open_core(config: &Config, signs: bool) -> Result<Core, StartError> {
    let store = Arc::new(open_store(config).await?);
    let kek = ca::load_kek(config)?;
    let authorities = ca::Authorities::start(
        store.clone(),
        kek,
        &ca::kek_path(config),
        &config.x509.trust_domain,
    )
    .await?;
    // Before anything else is written (the CAs write only on a first start, before there is a
    // log to check, and their KEK check comes first): every event from now on is MACed, and a
    // server that signs the log checks it first (integrity.rs).
    let (mac, from_seq) =
        integrity::use_mac_key(&store, authorities.kek(), &config.data_dir).await?;
    let key = if signs {
        let must_exist = integrity::key_must_exist(&store, &config.data_dir).await?;
        let key = audit::open_or_create_key(
            &store,
            authorities.kek(),
            &config.data_dir,
            &config.audit.origin,
            must_exist,
        )
        .await?;
        integrity::verify_at_start(&store, &key, &mac, from_seq, &config.data_dir).await?;
        Some(key)
    } else {
        None
    };
    let policy = policy::Engine::start(&store, config.policy.starter).await?;
    // A changed SLA configuration is recorded and applied to open findings' due dates.
    match store
        .vulns()
        .apply_sla(&timers::system(), &config.vuln.sla)
        .await
    {
        Ok(true) => tracing::info!("the vulnerability SLA policy changed: due dates recomputed"),
        Ok(false) => {}
        Err(e) => return Err(StartError(format!("cannot apply the SLA policy: {e}"))),
    }
    Ok((store, authorities, policy, key))
}

/// Binds `listen.ssh_proxy`.
async fn bind_ssh_proxy(config: &Config) -> Result<TcpListener, StartError> {
    TcpListener::bind(config.listen_ssh_proxy)
        .await
        .map_err(|e| {
            StartError(format!(
                "cannot listen on {} (listen.ssh_proxy): {}",
                config.listen_ssh_proxy,
                io_cause(&e)
            ))
        })
}

/// Connects to the database and applies migrations; `warden migrate` stops here.
pub async fn open_store(config: &Config) -> Result<Store, StartError> {
    let store = Store::open(&config.database)
        .await
        .map_err(|e| StartError(e.to_string()))?;
    store
        .migrate()
        .await
        .map_err(|e| StartError(e.to_string()))?;
    Ok(store)
}

/// Creates the data directory (mode 0700) if needed and takes its lock file.
pub fn lock_data_dir(dir: &Path) -> Result<File, StartError> {
    let shown = dir.display();
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            StartError(format!(
                "cannot create data directory {shown}: {}",
                io_cause(&e)
            ))
        })?;
    let lock_path = dir.join("server.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| {
            StartError(format!(
                "data directory {shown} is not writable: {}",
                io_cause(&e)
            ))
        })?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(StartError(format!(
            "a Warden server is already running with data dir {shown} (its admin socket is {})",
            admin_socket_path(dir).display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StartError(format!(
            "cannot lock data directory {shown}: {}",
            io_cause(&e)
        ))),
    }
}
