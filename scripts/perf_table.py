#!/usr/bin/env python3
"""Every performance figure the project tracks, in one table, each beside its target.

    python3 scripts/perf_table.py                  # route 41 rounds, changes 15, PostgreSQL 5
    python3 scripts/perf_table.py --quick          # fewer rounds, for a look

Runs three benchmarks of `runtime/benches`, each interleaving its own variants round after
round (the ratios are medians of per-round ratios, never of sequential runs): `route` (a request
through a real `Router`, beside the open route and the peers tower-http, axum-auth and a
hand-written `==` extractor), `changes` (verification spread over 1,000,000 keys beside one key,
revoke, add and rotate at 1,000 and 1,000,000 keys, memory per key) and `pg_resync` (a full read
of a 100,000-row PostgreSQL table). Prints each benchmark's own report, then the table.
"""
import re
import subprocess
import sys

quick = "--quick" in sys.argv


def run(bench, *args, features=()):
    command = ["cargo", "bench", "-q", "-p", "axum-api-key", "--bench", bench]
    for feature in features:
        command += ["--features", feature]
    command += ["--", *args]
    print("$", " ".join(command), flush=True)
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{bench} failed:\n{out.stderr[-3000:]}")
    print(out.stdout, flush=True)
    return out.stdout


def ratio(text, label):
    """The median of the row `| label | median | ...` of a report, or None."""
    match = re.search(r"^\| " + re.escape(label) + r" \| ([0-9.]+)", text, re.M)
    return float(match.group(1)) if match else None


route = run("route", "--rounds", "11" if quick else "41")
changes = run("changes", "--rounds", "5" if quick else "15")
pg = run("pg_resync", "--rounds", "2" if quick else "5", features=["postgres"])

valid = ratio(route, "valid / unprotected")
rows = [
    ("valid-key route / open route", valid, "<= 1.12",
     valid is not None and valid <= 1.12),
    ("  hand-written `==` extractor / open", ratio(route, "seed_eq / unprotected"), "", None),
    ("  axum-auth bearer / open", ratio(route, "axum_auth_bearer / unprotected"), "", None),
    ("  tower-http bearer / open", ratio(route, "tower_http_bearer / unprotected"), "", None),
    ("  `#[api_key(bearer)]` / tower-http bearer",
     ratio(route, "valid_bearer / tower_http_bearer"), "< 1 (ahead of tower-http)",
     (ratio(route, "valid_bearer / tower_http_bearer") or 9) < 1),
]
invalid = ratio(route, "invalid / unprotected")
rows.append(("wrong-key route / open route", invalid, "<= valid-key + 0.05",
             None if invalid is None or valid is None else invalid <= valid + 0.05))
layer = ratio(route, "layer / unprotected")
rows.append(("`RequireApiKey::layer` route / open", layer, "<= 1.20 and <= valid-key + 0.08",
             None if layer is None or valid is None else layer <= min(1.20, valid + 0.08)))
rows.append(("  do-nothing layer / open (axum's cost of any layer)",
             ratio(route, "identity_layer / unprotected"), "", None))
rows.append(("  layer / do-nothing layer", ratio(route, "layer / identity_layer"), "", None))
rows.append(("  layer / attribute on a handler taking the key",
             ratio(route, "layer / valid_key_arg"), "", None))
spread = ratio(changes, "verify 1m spread / 1 key")
rows.append(("verify spread over 1M keys / 1 key", spread, "<= 2.5",
             spread is not None and spread <= 2.5))
for change in ("revoke", "add", "rotate"):
    value = ratio(changes, f"{change} 1m / 1k")
    rows.append((f"{change} at 1M keys / at 1k", value, "<= 2", value is not None and value <= 2))
memory = re.search(r"memory per key at \d+ keys: (\d+) bytes", changes)
memory = float(memory.group(1)) if memory else None
rows.append(("memory per key at 1M (resident, bytes)", memory, "<= 128",
             memory is not None and memory <= 128))
peak = re.search(r"peak / steady: ([0-9.]+)", pg)
peak = float(peak.group(1)) if peak else None
rows.append(("PgKeys full read, peak / steady resident", peak, "<= 1.3",
             None if peak is None else peak <= 1.3))

print("| figure | measured | target | met |")
print("| --- | --- | --- | --- |")
for name, value, target, met in rows:
    shown = "n/a" if value is None else f"{value:g}"
    verdict = "" if met is None else ("yes" if met else "**no**")
    print(f"| {name} | {shown} | {target} | {verdict} |")
