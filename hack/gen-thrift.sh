#!/usr/bin/env bash
# Regenerates src/nimbus/generated/storm.rs from src/nimbus/storm.thrift with the Apache Thrift compiler
# (Debian bookworm's thrift-compiler 0.17; `apt-get install -y thrift-compiler`).
#
# Usage: hack/gen-thrift.sh [OUTPUT_FILE]   (default: src/nimbus/generated/storm.rs)
#
# Two post-processing steps fix robustness bugs of the 0.17 Rust generator:
# 1. A hostile list length must not make the decoder reserve a huge Vec: the compiler emits
#    `Vec::with_capacity(list_ident.size as usize)`; we cap the *initial* capacity at 1024 elements (the Vec
#    still grows to the real length). Lengths are also checked against the bytes left in the frame by
#    `nimbus::codec::SliceInputProtocol`.
# 2. A union whose only member has an unknown field id (e.g. a member added by a newer Storm) makes the
#    generated decoder panic (`ret.expect("return value should have been constructed")`); it becomes a
#    protocol error instead.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-src/nimbus/generated/storm.rs}"
if ! command -v thrift >/dev/null 2>&1; then
  echo "thrift compiler not found: apt-get install -y thrift-compiler" >&2
  exit 2
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
thrift --gen rs -out "$tmp" src/nimbus/storm.thrift
sed -e 's/Vec::with_capacity(list_ident\.size as usize)/Vec::with_capacity(list_ident.size.clamp(0, 1024) as usize)/' \
  -e 's/Ok(ret\.expect("return value should have been constructed"))/ret.ok_or_else(|| thrift::Error::Protocol(ProtocolError::new(ProtocolErrorKind::InvalidData, "received an unknown union member")))/' \
  "$tmp/storm.rs" > "$tmp/storm.rs.post"
mkdir -p "$(dirname "$out")"
mv "$tmp/storm.rs.post" "$out"
