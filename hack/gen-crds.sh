#!/usr/bin/env bash
# Regenerates crds/ from `storm-controller crds`: one file per CRD, named after the CRD
# (crds/stormclusters.storm.apache.org.yaml, ...), each holding that CRD's YAML document exactly as the stream
# prints it (the text after its `---` line). *.yaml files in crds/ that no CRD produces any more are removed.
#
#   hack/gen-crds.sh            build with cargo and regenerate crds/
#   hack/gen-crds.sh --stdin    split a stream read from stdin instead (used to test this script)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
out_dir="crds"

split_dir="$(mktemp -d)"
trap 'rm -rf "$split_dir"' EXIT
stream="$split_dir/stream"
: >"$split_dir/order"

case "${1:-}" in
  "") cargo run --quiet --locked -- crds >"$stream" ;;
  --stdin) cat >"$stream" ;;
  *) echo "usage: hack/gen-crds.sh [--stdin]" >&2; exit 2 ;;
esac

# Split at lines that are exactly `---`; a document's file name is its top-level metadata.name.
awk -v dir="$split_dir" '
  function finish() {
    if (doc == "") return
    if (name == "") { print "hack/gen-crds.sh: a document has no metadata.name" > "/dev/stderr"; exit 1 }
    if (name !~ /^[a-z0-9.-]+$/) { print "hack/gen-crds.sh: bad CRD name " name > "/dev/stderr"; exit 1 }
    file = dir "/" name ".yaml"
    if (seen[file]++) { print "hack/gen-crds.sh: duplicate CRD " name > "/dev/stderr"; exit 1 }
    printf "%s", doc > file
    close(file)
    print name > (dir "/order")
    doc = ""; name = ""; in_metadata = 0
  }
  /^---$/ { finish(); started = 1; next }
  {
    if (!started) { print "hack/gen-crds.sh: the stream must start with ---" > "/dev/stderr"; exit 1 }
    doc = doc $0 "\n"
    if ($0 ~ /^metadata:/) { in_metadata = 1; next }
    if ($0 ~ /^[^ #]/) { in_metadata = 0 }
    if (in_metadata && name == "" && $0 ~ /^  name: /) {
      name = substr($0, 9)
      gsub(/^["\047]|["\047]$/, "", name)
    }
  }
  END { finish() }
' "$stream"

# The pieces, in stream order, must join back into exactly the stream.
rejoined="$split_dir/rejoined"
: >"$rejoined"
while IFS= read -r name; do
  printf -- '---\n' >>"$rejoined"
  cat "$split_dir/$name.yaml" >>"$rejoined"
done <"$split_dir/order"
cmp -s "$stream" "$rejoined" || { echo "hack/gen-crds.sh: the split does not rejoin into the stream" >&2; exit 1; }
shopt -s nullglob
pieces=("$split_dir"/*.yaml)

mkdir -p "$out_dir"
for old in "$out_dir"/*.yaml; do
  [[ -e "$split_dir/$(basename "$old")" ]] || { rm -f "$old"; echo "removed $old"; }
done
for piece in "${pieces[@]}"; do
  cp "$piece" "$out_dir/$(basename "$piece")"
  echo "wrote $out_dir/$(basename "$piece")"
done
echo "crds/ holds ${#pieces[@]} CRD file(s)"
