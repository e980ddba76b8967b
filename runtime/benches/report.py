#!/usr/bin/env python3
"""Prints the medians of the last `cargo bench -p axum-api-key --bench verify` run, and the
ratios the project tracks, from criterion's estimates under target/criterion."""
import json
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parents[2] / "target" / "criterion"


def median(group, name):
    path = root / group / name / "new" / "estimates.json"
    if not path.exists():
        sys.exit(f"no result at {path}: run `cargo bench -p axum-api-key --bench verify` first")
    return json.loads(path.read_text())["median"]["point_estimate"]


rows = [(g, n, median(g, n)) for g, n in [
    ("verify", "sha256"), ("verify", "1_key"), ("verify", "1m_keys"), ("verify", "1m_keys_spread"),
]]
m = {f"{g}/{n}": v for g, n, v in rows}
print("| benchmark | median |")
print("| --- | --- |")
for g, n, v in rows:
    print(f"| {g}/{n} | {v:,.1f} ns |")
print()
print("| ratio | value |")
print("| --- | --- |")
for label, a, b in [
    ("1m_keys / 1_key", "verify/1m_keys", "verify/1_key"),
    ("1m_keys_spread / 1_key", "verify/1m_keys_spread", "verify/1_key"),
    ("1_key / sha256", "verify/1_key", "verify/sha256"),
]:
    print(f"| {label} | {m[a] / m[b]:.3f} |")
