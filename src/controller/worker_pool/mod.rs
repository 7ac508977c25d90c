//! StormWorkerPool: supervisor pods dedicated to one topology, an HPA on Storm metrics, and
//! scaling ordered with rebalances so that more pods mean more throughput.

pub mod build;
pub mod scale;
