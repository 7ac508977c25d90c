//! Leader election on a Lease in the Kubernetes API double: one leader at a time, takeover after
//! expiry, immediate handover on release.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::Api;
use storm_controller::controller::leader::{self, Attempt, LeaseConfig};
use storm_controller::kubesim::KubeSim;
use tokio_util::sync::CancellationToken;

fn config(identity: &str) -> LeaseConfig {
    let mut c = LeaseConfig::new("default", "storm-controller", identity);
    c.lease_duration = Duration::from_secs(15);
    c.renew_interval = Duration::from_millis(100);
    c
}

#[tokio::test]
async fn only_one_candidate_leads_until_the_lease_expires() {
    let sim = KubeSim::start().await;
    let api: Api<Lease> = Api::namespaced(sim.client(), "default");
    let t0 = Timestamp::from_second(1_000_000).unwrap();
    assert_eq!(
        leader::try_acquire(&api, &config("a"), t0).await.unwrap(),
        Attempt::Leading
    );
    assert_eq!(
        leader::try_acquire(&api, &config("b"), t0).await.unwrap(),
        Attempt::Following
    );
    let renewed = t0.checked_add(SignedDuration::from_secs(10)).unwrap();
    assert_eq!(
        leader::try_acquire(&api, &config("a"), renewed)
            .await
            .unwrap(),
        Attempt::Leading,
        "the holder renews"
    );
    let still_valid = renewed.checked_add(SignedDuration::from_secs(14)).unwrap();
    assert_eq!(
        leader::try_acquire(&api, &config("b"), still_valid)
            .await
            .unwrap(),
        Attempt::Following
    );
    let expired = renewed.checked_add(SignedDuration::from_secs(16)).unwrap();
    assert_eq!(
        leader::try_acquire(&api, &config("b"), expired)
            .await
            .unwrap(),
        Attempt::Leading,
        "b takes an expired lease"
    );
    let lease = api.get("storm-controller").await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some("b"));
    assert_eq!(lease.lease_transitions, Some(1));
    assert_eq!(
        leader::try_acquire(&api, &config("a"), expired)
            .await
            .unwrap(),
        Attempt::Following
    );
}

#[tokio::test]
async fn a_leader_that_stops_hands_over_at_once() {
    let sim = KubeSim::start().await;
    let stop_a = CancellationToken::new();
    let stop_b = CancellationToken::new();
    let (mut a, task_a) = leader::spawn(sim.client(), config("a"), stop_a.clone());
    tokio::time::timeout(Duration::from_secs(10), a.wait_for(|l| *l))
        .await
        .expect("a leads")
        .unwrap();
    let (mut b, task_b) = leader::spawn(sim.client(), config("b"), stop_b.clone());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!*b.borrow(), "b follows while a renews");
    stop_a.cancel();
    task_a.await.unwrap();
    assert!(!*a.borrow(), "a stopped leading");
    // Released, not expired: b leads within a few renew intervals, long before 15 s.
    tokio::time::timeout(Duration::from_secs(5), b.wait_for(|l| *l))
        .await
        .expect("b takes over")
        .unwrap();
    stop_b.cancel();
    task_b.await.unwrap();
}

#[tokio::test]
async fn a_leader_that_cannot_renew_steps_down() {
    let sim = KubeSim::start().await;
    let stop = CancellationToken::new();
    let mut cfg = config("a");
    cfg.lease_duration = Duration::from_secs(1);
    let (mut a, task) = leader::spawn(sim.client(), cfg, stop.clone());
    tokio::time::timeout(Duration::from_secs(10), a.wait_for(|l| *l))
        .await
        .expect("a leads")
        .unwrap();
    // Every Lease request fails from now on.
    sim.fail_next(
        100_000,
        None,
        "/apis/coordination.k8s.io/v1/namespaces/default/leases",
        500,
    );
    tokio::time::timeout(Duration::from_secs(10), a.wait_for(|l| !*l))
        .await
        .expect("a steps down")
        .unwrap();
    stop.cancel();
    task.await.unwrap();
}
