#!/bin/sh
# Gives every workspace member an empty source tree (src/lib.rs, src/main.rs where the
# manifest declares a [[bin]], one empty file per [[bench]]), so that the Dockerfile can build
# all dependencies from the manifests and Cargo.lock alone: that layer stays cached until a
# manifest or the lock changes. Run from the workspace root, on a copy holding only manifests.
set -eu
for manifest in crates/*/Cargo.toml tests/Cargo.toml; do
  dir=$(dirname "$manifest")
  mkdir -p "$dir/src"
  : >"$dir/src/lib.rs"
  if grep -q '^\[\[bin\]\]' "$manifest"; then
    echo 'fn main() {}' >"$dir/src/main.rs"
  fi
  # The `name = "…"` line right after each [[bench]] header.
  awk '/^\[\[bench\]\]/ { bench = 1; next } /^\[/ { bench = 0 }
       bench && /^name *=/ { gsub(/.*= *"|".*/, ""); print; bench = 0 }' "$manifest" |
    while read -r bench; do
      mkdir -p "$dir/benches"
      echo 'fn main() {}' >"$dir/benches/$bench.rs"
    done
done
