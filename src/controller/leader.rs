//! Leader election on a `coordination.k8s.io/v1` Lease, so that two replicas never reconcile at
//! once while every replica serves the metrics API.
//!
//! The protocol is client-go's: the holder renews `renewTime` every `renew_interval`; another
//! candidate takes the Lease over only when `renewTime + leaseDurationSeconds` has passed. Every
//! write carries the `resourceVersion` it read, so two candidates racing for an expired Lease cannot
//! both win (one gets a 409 Conflict). A leader that cannot renew within the lease duration stops
//! leading before anyone else may start.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Settings of the election.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This candidate's identity (the pod name).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How often the leader renews, and how often a candidate retries.
    pub renew_interval: Duration,
}

impl LeaseConfig {
    /// client-go's defaults: 15 s lease, renewal every 5 s (well inside the 10 s renew deadline).
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_interval: Duration::from_secs(5),
        }
    }
}

/// What one attempt found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// We hold the Lease (acquired or renewed).
    Leading,
    /// Another candidate holds a valid Lease.
    Following,
}

/// One acquire-or-renew step.
pub async fn try_acquire(
    api: &Api<Lease>,
    config: &LeaseConfig,
    now: Timestamp,
) -> Result<Attempt, kube::Error> {
    let duration_secs = i32::try_from(config.lease_duration.as_secs()).unwrap_or(i32::MAX);
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                namespace: Some(config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(duration_secs),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(Attempt::Leading),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Following),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let ours = holder == config.identity;
    if !ours && !holder.is_empty() && !expired(&spec, now) {
        return Ok(Attempt::Following);
    }
    let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
    lease.spec = Some(LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(duration_secs),
        acquire_time: if ours {
            spec.acquire_time
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..spec
    });
    // `replace` sends the resourceVersion we read: a concurrent writer makes this a 409.
    match api
        .replace(&lease.name_any(), &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(Attempt::Leading),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Following),
        Err(e) => Err(e),
    }
}

fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let Some(renewed) = spec.renew_time.as_ref().map(|t| t.0) else {
        return true;
    };
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15).max(1));
    now.as_second() >= renewed.as_second().saturating_add(duration)
}

/// Gives the Lease up (empties the holder) so that another replica takes over at once instead of
/// waiting for it to expire. Only the holder releases.
pub async fn release(api: &Api<Lease>, config: &LeaseConfig) -> Result<(), kube::Error> {
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        return Ok(());
    };
    let Some(spec) = lease.spec.as_mut() else {
        return Ok(());
    };
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    match api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs the election until `shutdown`: publishes `true` on the returned channel while this
/// candidate leads and `false` otherwise. On shutdown a leader releases the Lease.
pub fn spawn(
    client: Client,
    config: LeaseConfig,
    shutdown: CancellationToken,
) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let api: Api<Lease> = Api::namespaced(client, &config.namespace);
        // When the last successful renewal happened; leadership ends `lease_duration` after it
        // even if the API server stays unreachable, before another candidate may take over.
        let mut last_renewal: Option<tokio::time::Instant> = None;
        loop {
            let leading = match try_acquire(&api, &config, Timestamp::now()).await {
                Ok(Attempt::Leading) => {
                    last_renewal = Some(tokio::time::Instant::now());
                    true
                }
                Ok(Attempt::Following) => {
                    last_renewal = None;
                    false
                }
                Err(error) => {
                    tracing::warn!(%error, lease = %config.name, "leader election: lease update failed");
                    // Keep leading only while the last renewal is younger than the renew deadline
                    // (two thirds of the lease, as client-go's default 10 s of 15 s).
                    let deadline = config.lease_duration * 2 / 3;
                    last_renewal.is_some_and(|t| t.elapsed() < deadline)
                }
            };
            if *tx.borrow() != leading {
                tracing::info!(identity = %config.identity, lease = %config.name, leading, "leadership changed");
                tx.send_replace(leading);
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(config.renew_interval) => {}
            }
        }
        tx.send_replace(false);
        if last_renewal.is_some()
            && let Err(error) = release(&api, &config).await
        {
            tracing::warn!(%error, "leader election: releasing the lease failed");
        }
    });
    (rx, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed: i64, duration: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
            lease_duration_seconds: Some(duration),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_lease_expires_after_its_duration_since_renewal() {
        let now = Timestamp::from_second(1_000).unwrap();
        assert!(!expired(&spec("a", 990, 15), now));
        assert!(expired(&spec("a", 985, 15), now));
        assert!(
            expired(&LeaseSpec::default(), now),
            "never renewed means free"
        );
    }
}
