//! The admin HTTP server (plain HTTP, separate from the metrics API port): `/livez`, `/readyz`, `/metrics`.
//!
//! [`router`] builds the routes from an [`AdminState`]; more routes can be added by merging another `Router` into
//! its result before [`serve`]. Readiness is a set of named gates ([`Readiness::gate`]) that each part of the
//! process opens once it can do its work; `/readyz` is 200 when every gate is open and the process is not shutting
//! down, else 503 with the reasons in the body.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::{self, Metrics};

/// What the admin routes read: the metrics registry and the readiness gates.
#[derive(Clone, Debug)]
pub struct AdminState {
    /// Encoded on every `GET /metrics`.
    pub metrics: Arc<Metrics>,
    /// Decides `/readyz`.
    pub readiness: Readiness,
}

/// The process's readiness: named gates plus a shutting-down flag. Cheap to clone; clones share state.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    inner: Arc<Mutex<ReadinessInner>>,
}

#[derive(Debug, Default)]
struct ReadinessInner {
    shutting_down: bool,
    /// Gate name -> open.
    gates: BTreeMap<String, bool>,
}

impl Readiness {
    /// A readiness with no gates: ready until [`Readiness::shutdown`] is called.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a closed gate named `name` (e.g. `controllers`); the process is not ready until it is opened.
    pub fn gate(&self, name: impl Into<String>) -> ReadinessGate {
        let name = name.into();
        self.lock().gates.insert(name.clone(), false);
        ReadinessGate {
            readiness: self.clone(),
            name,
        }
    }

    /// Marks the process as shutting down: not ready from now on, whatever the gates say.
    pub fn shutdown(&self) {
        self.lock().shutting_down = true;
    }

    /// `Ok(())` when ready, else the reasons it is not (`shutting down`, closed gate names).
    pub fn check(&self) -> Result<(), Vec<String>> {
        let inner = self.lock();
        let mut reasons = Vec::new();
        if inner.shutting_down {
            reasons.push("shutting down".to_owned());
        }
        reasons.extend(
            inner
                .gates
                .iter()
                .filter(|(_, open)| !**open)
                .map(|(name, _)| format!("{name} not ready")),
        );
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons)
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReadinessInner> {
        // The state is two plain values: a panic while holding the lock cannot leave it inconsistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One named readiness condition, owned by the part of the process it describes.
#[derive(Debug)]
pub struct ReadinessGate {
    readiness: Readiness,
    name: String,
}

impl ReadinessGate {
    /// Opens (`true`) or closes (`false`) this gate.
    pub fn set(&self, open: bool) {
        self.readiness.lock().gates.insert(self.name.clone(), open);
    }
}

/// The admin routes: `GET /livez`, `GET /readyz`, `GET /metrics`.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_handler))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes, then finishes in-flight requests and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// 200 while the process runs and its runtime answers.
async fn livez() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AdminState>) -> Response {
    match state.readiness.check() {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(reasons) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", reasons.join(", ")),
        )
            .into_response(),
    }
}

async fn metrics_handler(State(state): State<AdminState>) -> Response {
    match state.metrics.encode() {
        Ok(body) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response(),
        Err(error) => {
            tracing::error!(%error, "encoding metrics failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding metrics failed\n",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_needs_every_gate_open_and_no_shutdown() {
        let readiness = Readiness::new();
        assert_eq!(readiness.check(), Ok(()));
        let controllers = readiness.gate("controllers");
        let api = readiness.gate("metrics-api");
        assert_eq!(
            readiness.check(),
            Err(vec![
                "controllers not ready".to_owned(),
                "metrics-api not ready".to_owned()
            ])
        );
        controllers.set(true);
        api.set(true);
        assert_eq!(readiness.check(), Ok(()));
        api.set(false);
        assert_eq!(
            readiness.check(),
            Err(vec!["metrics-api not ready".to_owned()])
        );
        api.set(true);
        readiness.shutdown();
        assert_eq!(readiness.check(), Err(vec!["shutting down".to_owned()]));
    }
}
