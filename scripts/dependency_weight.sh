#!/usr/bin/env bash
# How many crates axum-api-key adds to a hello-world axum server (axum and tokio with their
# usual features), with its default features and with every feature, and whether a second
# major version of a crate comes with it. Prints one line per case; `--list` also prints the
# added crates.
#
#   bash scripts/dependency_weight.sh [--list]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
work="$target/dependency-weight"
rm -rf "$work" && mkdir -p "$work"

tree() { # crates in the normal and build graph of server $1 (itself left out), "name version"
  (cd "$work/$1" && cargo tree --quiet --prefix none -e normal,build) \
    | sed 's/ (\*)//; s/ (proc-macro)//' | awk -v self="$1" '$1 != self {print $1" "$2}' | sort -u
}
server() { # a hello-world server crate in $work/$1 depending on $2 (TOML dependency lines)
  mkdir -p "$work/$1/src"
  printf '[package]\nname = "%s"\nversion = "0.0.0"\nedition = "2024"\npublish = false\n\n[workspace]\n\n[dependencies]\naxum = "0.8"\ntokio = { version = "1", features = ["full"] }\n%s\n' \
    "$1" "$2" > "$work/$1/Cargo.toml"
  printf '#[tokio::main]\nasync fn main() {}\n' > "$work/$1/src/main.rs"
}

server base ""
server default "axum-api-key = { path = \"$root/runtime\" }"
features=$(cargo metadata --format-version 1 --no-deps | python3 -c '
import json, sys
pkg = next(p for p in json.load(sys.stdin)["packages"] if p["name"] == "axum-api-key")
print(",".join(sorted(f for f in pkg["features"] if f != "default")))')
server all "axum-api-key = { path = \"$root/runtime\", features = [\"${features//,/\",\"}\"] }"

tree base > "$work/base.txt"
for case in default all; do
  tree "$case" > "$work/$case.txt"
  added=$(comm -13 "$work/base.txt" "$work/$case.txt")
  majors=$(awk '{split($2, v, "."); m = (v[1] == "v0") ? v[1]"."v[2] : v[1]; print $1" "m}' "$work/$case.txt" \
    | sort -u | awk '{print $1}' | uniq -d | paste -sd, -)
  echo "$case: $(grep -c . <<<"$added") crates added to $(grep -c . "$work/base.txt"); two majors of: ${majors:-none}"
  if [ "${1:-}" = "--list" ]; then sed 's/^/  /' <<<"$added"; fi
done
