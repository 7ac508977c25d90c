//! `?watch=true`: newline-delimited watch events from the bounded history, then live.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::Shared;
use super::error::ApiError;
use super::kinds::ResourceKind;
use super::selector::{FieldSelector, LabelSelector};
use super::store::{Event, EventType};

/// What one watch filters on and how it starts.
pub(crate) struct WatchRequest {
    pub kind: Arc<ResourceKind>,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub resource_version: Option<String>,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout: Option<Duration>,
}

impl WatchRequest {
    fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// The wire line for an event, or `None` when this watch does not see it. A modification that
    /// moves an object into or out of the selection reads as ADDED or DELETED, as in the apiserver.
    fn render(&self, ev: &Event) -> Option<Bytes> {
        if ev.kind != self.kind.key() {
            return None;
        }
        if self.namespace.as_ref().is_some_and(|n| *n != ev.namespace) {
            return None;
        }
        let now = self.matches(&ev.object);
        let etype = match ev.etype {
            EventType::Modified => {
                let before = ev.old.as_ref().is_some_and(|o| self.matches(o));
                match (before, now) {
                    (true, true) => "MODIFIED",
                    (false, true) => "ADDED",
                    (true, false) => "DELETED",
                    (false, false) => return None,
                }
            }
            other if now => other.as_str(),
            _ => return None,
        };
        Some(line(etype, &ev.object))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({ "resourceVersion": rv.to_string() });
        if initial_end {
            meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        line(
            "BOOKMARK",
            &json!({ "kind": self.kind.kind, "apiVersion": self.kind.api_version(), "metadata": meta }),
        )
    }
}

fn line(etype: &str, object: &Value) -> Bytes {
    let mut out = format!("{{\"type\":\"{etype}\",\"object\":");
    out.push_str(&object.to_string());
    out.push_str("}\n");
    Bytes::from(out)
}

/// Starts a watch: takes the starting point under the store lock (so no event is lost or
/// repeated), then streams from a task that ends on timeout, shutdown, a lagging client or a
/// closed connection. A resourceVersion older than the history yields one ERROR event with a
/// 410 Expired Status, as the apiserver does.
pub(crate) fn start(shared: Arc<Shared>, req: WatchRequest) -> Result<Response, ApiError> {
    let from: Option<u64> = match req.resource_version.as_deref() {
        None | Some("") | Some("0") => None,
        Some(s) => Some(
            s.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {s:?}")))?,
        ),
    };
    let (initial, mut rx, start_rv) = {
        let store = shared.lock_store();
        let rx = store.subscribe();
        let cur = store.rv();
        let mut initial = Vec::new();
        match from {
            None => {
                for obj in store.list(&req.kind, req.namespace.as_deref(), None) {
                    if req.matches(obj) {
                        initial.push(line("ADDED", obj));
                    }
                }
                if req.send_initial_events {
                    initial.push(req.bookmark(cur, true));
                }
            }
            Some(rv) => match store.history_after(rv) {
                Some(events) => initial.extend(events.iter().filter_map(|e| req.render(e))),
                None => {
                    let status = ApiError::expired(format!(
                        "too old resource version: {rv} ({})",
                        store.floor()
                    ))
                    .status_json();
                    initial.push(line("ERROR", &status));
                    return Ok(stream_response(spawn_fixed(initial)));
                }
            },
        }
        (initial, rx, cur)
    };
    let (tx, out) = mpsc::channel::<Bytes>(64);
    let mut shutdown = shared.shutdown.clone();
    let bookmark_every = shared.options.bookmark_interval;
    tokio::spawn(async move {
        for l in initial {
            if tx.send(l).await.is_err() {
                return;
            }
        }
        let mut seen = start_rv;
        let deadline = req.timeout.map(|t| tokio::time::Instant::now() + t);
        let mut ticker = tokio::time::interval(bookmark_every);
        ticker.tick().await;
        loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        seen = ev.rv;
                        if let Some(l) = req.render(&ev)
                            && tx.send(l).await.is_err() {
                                return;
                            }
                    }
                    // A lagging watcher ends; the client resumes from its last resourceVersion.
                    Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => return,
                },
                _ = ticker.tick(), if req.bookmarks => {
                    if tx.send(req.bookmark(seen, false)).await.is_err() {
                        return;
                    }
                }
                _ = async { if let Some(d) = deadline { tokio::time::sleep_until(d).await } }, if deadline.is_some() => return,
                _ = shutdown.changed() => return,
                _ = tx.closed() => return,
            }
        }
    });
    Ok(stream_response(out))
}

fn spawn_fixed(lines: Vec<Bytes>) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(lines.len().max(1));
    for l in lines {
        // The channel has room for every line.
        let _ = tx.try_send(l);
    }
    rx
}

fn stream_response(mut rx: mpsc::Receiver<Bytes>) -> Response {
    let stream = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|o| o.map(Ok::<Bytes, std::convert::Infallible>))
    });
    Response::builder()
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}
