//! `/healthz` (the process serves), `/readyz` (this replica knows who leads and, when it is the
//! one reconciling, its caches are synced) and `/metrics` (Prometheus text format).

use super::metrics::Metrics;
use crate::Error;
use crate::sync::lock;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// Where this replica is in its life; `/readyz` answers 200 in [`Phase::Standby`] and
/// [`Phase::Reconciling`] and 503 otherwise, with the phase as the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for Sovra's CRDs to be Established.
    WaitingForCrds,
    /// Campaigning without knowing who leads: the Lease cannot be read or written (an API
    /// server outage), or this replica just lost its lease.
    Campaigning(String),
    /// Another replica holds a valid lease; this one takes over when it expires.
    Standby(String),
    /// This replica leads (or runs without leader election) and is starting its caches.
    Starting,
    /// The controllers run.
    Reconciling,
}

impl Phase {
    pub fn is_ready(&self) -> bool {
        matches!(self, Self::Standby(_) | Self::Reconciling)
    }

    fn describe(&self) -> String {
        match self {
            Self::WaitingForCrds => "not ready: waiting for the CRDs to be established".to_owned(),
            Self::Campaigning(why) => format!("not ready: leadership unknown ({why})"),
            Self::Standby(holder) => format!("ready: standing by; {holder} leads"),
            Self::Starting => "not ready: leading; caches syncing".to_owned(),
            Self::Reconciling => "ready: reconciling".to_owned(),
        }
    }
}

#[derive(Clone)]
pub struct Health {
    phase: Arc<Mutex<Phase>>,
    metrics: Metrics,
}

impl Health {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            phase: Arc::new(Mutex::new(Phase::WaitingForCrds)),
            metrics,
        }
    }

    pub fn set(&self, phase: Phase) {
        let mut current = lock(&self.phase);
        if *current != phase {
            tracing::debug!(from = ?*current, to = ?phase, "readiness phase");
            *current = phase;
        }
    }

    pub fn phase(&self) -> Phase {
        lock(&self.phase).clone()
    }
}

pub fn router(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(h): State<Health>| async move {
                let phase = h.phase();
                let status = if phase.is_ready() {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                (status, phase.describe())
            }),
        )
        .route(
            "/metrics",
            get(|State(h): State<Health>| async move {
                (
                    [(
                        "content-type",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    h.metrics.render(),
                )
            }),
        )
        .with_state(health)
}

/// Binds `addr` and serves until the process ends. Binding errors surface at once.
pub async fn serve(addr: SocketAddr, health: Health) -> Result<tokio::task::JoinHandle<()>, Error> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(Error::HttpServer)?;
    Ok(tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router(health)).await {
            tracing::error!(%error, "HTTP server stopped");
        }
    }))
}
