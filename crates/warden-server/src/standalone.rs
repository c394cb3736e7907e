//! `warden proxy`: the recording SSH proxy on its own, for a bastion in front of the hosts or
//! for more proxies than servers. It shares the servers' database and key-encryption key, so
//! it trusts the same CAs, asks the same policy (refreshed every second), writes the same
//! session records and audit log, and ends sessions an administrator ends through any server.
//! It serves no API.

use std::fs::File;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use warden_store::Store;

use crate::config::io_cause;
use crate::recordings::Recordings;
use crate::{Config, StartError, bind_ssh_proxy, lock_data_dir, open_core, policy, ssh_gate};

/// A proxy process, started and bound, not yet serving.
#[expect(
    missing_debug_implementations,
    reason = "holds the proxy and the database pool"
)]
pub struct ProxyServer {
    store: Arc<Store>,
    proxy: warden_proxy::Proxy,
    policy: Arc<policy::Engine>,
    listener: TcpListener,
    /// Held for the process's life: one process per data directory.
    _lock: File,
}

impl ProxyServer {
    /// Takes the data directory's lock, connects to and migrates the database, loads the CAs
    /// and the policy, and binds `listen.ssh_proxy`.
    pub async fn start(config: Config) -> Result<ProxyServer, StartError> {
        let lock = lock_data_dir(&config.data_dir)?;
        let (store, authorities, policy, _) = open_core(&config, false).await?;
        let recordings = Recordings::open(&config.ssh.recordings)?;
        recordings.check().await?;
        recordings.publish_leftovers().await;
        let proxy = ssh_gate::proxy(
            &store,
            &authorities,
            &policy,
            &recordings,
            &config.ssh,
            "warden proxy",
        )
        .map_err(|e| StartError(e.to_string()))?;
        let listener = bind_ssh_proxy(&config).await?;
        Ok(ProxyServer {
            store,
            proxy,
            policy,
            listener,
            _lock: lock,
        })
    }

    /// Where the proxy listens.
    pub fn addr(&self) -> Result<SocketAddr, StartError> {
        self.listener
            .local_addr()
            .map_err(|e| StartError(format!("cannot read listen address: {}", io_cause(&e))))
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop, stopped) = watch::channel(false);
        let listen = tokio::spawn(self.store.clone().listen());
        let refresh = tokio::spawn(self.policy.clone().run_refresh(self.store.clone()));
        let serving = tokio::spawn(self.proxy.serve(self.listener, stopped));
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
        refresh.abort();
        listen.abort();
        if let Err(e) = serving.await {
            tracing::error!(error = %e, "the ssh proxy task failed");
        }
        self.store.close().await;
        tracing::info!("stopped");
    }
}
