#!/usr/bin/env bash
# Runs the StormWorkerPool closed-loop simulation (tests/worker_pool_sim.rs) and prints its timeline:
# load rises, pending tuples rise, the HPA formula raises the pool's /scale on the served metrics, the
# operator grows the supervisors, waits for them to register in the fake Nimbus and rebalances, pending
# falls; then the load drops and the pool shrinks, rebalancing first. Everything runs on 127.0.0.1.
#
#   hack/pool-sim.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo test --quiet --test worker_pool_sim -- --nocapture --test-threads=1 2>&1 |
  sed -n '/^StormWorkerPool closed loop/,/^test result/p'
