//! Wiring: application state, the router, and the process lifecycle.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::{Extension, Router};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::{AuthenticationApi, BackrestApi, SyncStateApi};
use crate::cli::Options;
use crate::config::ConfigStore;
use crate::connect::ShutdownSignal;
use crate::datadir::{self, DataDirLock};
use crate::logstore::LogStore;
use crate::oplog::OpLog;
use crate::orchestrator::Orchestrator;
use crate::pb::{v1, v1sync};
use crate::restic::Restic;

pub struct AppInner {
    pub options: Options,
    pub config: Arc<ConfigStore>,
    pub oplog: OpLog,
    pub logs: LogStore,
    /// Fed by the operation log's events; served at `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    pub orchestrator: Orchestrator,
    pub shutdown: ShutdownSignal,
    pub auth: Arc<crate::auth::Auth>,
    /// Signs and checks download links (`<data-dir>/download-secret`).
    pub download_links: crate::download::LinkSigner,
}

/// Shared, cheaply clonable application state.
#[derive(Clone)]
pub struct AppState(pub Arc<AppInner>);

impl Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

/// No methods of its own: the bidi `Sync` RPC answers `unimplemented`.
struct SyncPeerApi;
impl v1sync::BackrestSyncService for SyncPeerApi {}

/// The whole HTTP surface: every Connect service, then the web UI.
pub fn app(state: AppState) -> Router {
    let router = Router::new()
        .merge(v1::backrest_router(Arc::new(BackrestApi {
            state: state.clone(),
        })))
        .merge(v1::authentication_router(Arc::new(AuthenticationApi {
            state: state.clone(),
        })))
        .merge(v1sync::backrest_sync_state_service_router(Arc::new(
            SyncStateApi {
                state: state.clone(),
            },
        )))
        .merge(v1sync::backrest_sync_service_router(Arc::new(SyncPeerApi)))
        .merge(crate::metrics::routes(state.metrics.clone()))
        .merge(crate::docs::routes())
        .merge(crate::download::routes(state.clone()))
        .merge(crate::web::routes(state.clone()))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::middleware::require_auth,
        ))
        .layer(Extension(state.shutdown.clone()));
    match crate::auth::middleware::cors(&state.options.cors_allow_origin) {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// Opens the data directory, config and stores. Holds the directory lock.
pub async fn open_state(
    options: Options,
    shutdown: ShutdownSignal,
) -> anyhow::Result<(AppState, DataDirLock)> {
    datadir::create_dir(&options.data_dir)?;
    let lock = datadir::lock(&options.data_dir)?;
    let config = ConfigStore::open(&options.config_file)
        .with_context(|| format!("cannot load config {}", options.config_file.display()))?;
    let oplog = OpLog::open(&options.data_dir.join("oplog.sqlite"))
        .await
        .context("cannot open the operation log")?;
    let logs = LogStore::open(&options.data_dir.join("tasklogs"))
        .await
        .context("cannot open the log store")?;
    let interrupted_repos = crate::orchestrator::recovery::recover(&oplog)
        .await
        .context("cannot recover unfinished operations")?;
    let restic = match Restic::discover(options.restic_cmd.as_deref(), &options.data_dir).await {
        Ok(r) => {
            tracing::info!(path = %r.bin.display(), "using restic {}", r.version);
            Ok(Arc::new(r))
        }
        Err(e) => {
            tracing::warn!(
                "{e}; backups and other restic operations will fail until restic is available"
            );
            Err(e)
        }
    };
    let config = Arc::new(config);
    // Before the orchestrator starts, so no task run is missed.
    let metrics = crate::metrics::Metrics::start(&oplog, &config).await;
    let auth = Arc::new(
        crate::auth::Auth::open(&options.data_dir, config.clone())
            .context("cannot set up authentication")?,
    );
    crate::auth::warn_if_open(&options.bind_address, &config.get());
    let download_links =
        crate::download::LinkSigner::open(&options.data_dir, crate::download::Clock::from_env()?)
            .context("cannot set up download links")?;
    let orchestrator = Orchestrator::new(
        config.clone(),
        oplog.clone(),
        logs.clone(),
        restic,
        options.max_parallel_tasks,
    );
    orchestrator.unlock_after_crash(interrupted_repos);
    let state = AppState(Arc::new(AppInner {
        options,
        config,
        oplog,
        logs,
        metrics,
        orchestrator,
        shutdown,
        auth,
        download_links,
    }));
    Ok((state, lock))
}

/// Runs the server until SIGINT/SIGTERM.
pub async fn run(options: Options) -> anyhow::Result<()> {
    // Install the handlers first: a SIGTERM that arrives while we start up
    // must still mean "shut down cleanly", not the default instant death.
    let signals = Signals::install()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (state, _lock) = open_state(options, ShutdownSignal(shutdown_rx)).await?;
    let addr: SocketAddr = state
        .options
        .bind_address
        .parse()
        .with_context(|| format!("invalid bind address {:?}", state.options.bind_address))?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(
        config = %state.options.config_file.display(),
        data = %state.options.data_dir.display(),
        "starting backrest-rs {}", crate::VERSION
    );
    // A plain line on stdout, so scripts and tests can find the port.
    println!("backrest-rs listening on http://{local}");

    state.orchestrator.start(state.shutdown.clone()).await;
    let router = app(state.clone());
    let shutdown_signal = state.shutdown.clone();
    // Peer addresses feed the failed-login throttle.
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal.wait());
    let server = tokio::spawn(async move { server.await });

    signals.wait().await;
    tracing::info!("shutting down: finishing open requests");
    let _ = shutdown_tx.send(true);
    match tokio::time::timeout(Duration::from_secs(10), server).await {
        Ok(r) => r??,
        Err(_) => tracing::warn!("connections still open after 10s; exiting anyway"),
    }
    // Running tasks stop (restic gets SIGINT and removes its lock) and record
    // how they ended before the stores close.
    state.orchestrator.shutdown(Duration::from_secs(15)).await;
    // Checkpoint the SQLite WAL files so the data dir is tidy for the next start.
    state.oplog.close().await;
    state.logs.close().await;
    tracing::info!("stopped");
    Ok(())
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.int.recv() => {},
        }
    }
}
