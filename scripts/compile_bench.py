#!/usr/bin/env python3
"""What `#[api_key]` costs the compiler: 200 handlers built without a guard, with a
hand-written extractor argument, and with `#[api_key]` in four configurations (the default;
another header and status; scopes; a store, scopes and a rate limit together), in the same run.

    python3 scripts/compile_bench.py [--handlers 200] [--rounds 7] [--runtime PATH] [--lines-only]

`--runtime` builds against another checkout's runtime (to compare with an earlier commit);
`--lines-only` only counts the lines of expanded code per handler (rustc's `-Zunpretty=expanded`,
enabled on the stable compiler with `RUSTC_BOOTSTRAP=1`, formatted by rustfmt).

Generates one crate per variant under target/compile-bench (a workspace of its own that depends
on this repository's runtime by path), builds their dependencies once, then, round after round,
touches each crate's source and times `cargo build` of that crate alone, the variants in a
rotating order. Prints the median of the per-round ratios to the plain crate, with their
spread, and the lines of expanded code each handler adds.
"""
import argparse
import os
import pathlib
import statistics
import subprocess
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "target" / "compile-bench"

HEADER = """use axum::{routing::get, Router};
#[allow(unused_imports)]
use axum_api_key::{api_key, ApiKeys, VerifiedKey};
"""

EXTRACTOR = """
/// The extractor people hand-write: one type shared by every handler.
pub struct SeedKey;

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for SeedKey {
    type Rejection = axum::http::StatusCode;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        match parts.headers.get("x-api-key") {
            Some(value) if value == "k" => Ok(SeedKey),
            _ => Err(axum::http::StatusCode::UNAUTHORIZED),
        }
    }
}
"""


def handler(variant, i):
    if variant == "plain":
        return f"pub async fn h{i}() -> &'static str {{ \"{i}\" }}\n"
    if variant == "extractor":
        return f"pub async fn h{i}(_: SeedKey) -> &'static str {{ \"{i}\" }}\n"
    attribute = {
        "api_key": "#[api_key]",
        "api_key_header": '#[api_key(header = "x-partner-key", status = 403)]',
        "api_key_scopes": '#[api_key(scopes = ["orders:read"])]',
        "api_key_full": '#[api_key(store = ApiKeys, scopes = ["orders:read"], rate_limit = "10/s")]',
    }[variant]
    return f"{attribute}\npub async fn h{i}() -> &'static str {{ \"{i}\" }}\n"


def source(variant, n):
    text = HEADER + (EXTRACTOR if variant == "extractor" else "")
    text += "".join(handler(variant, i) for i in range(n))
    text += "\nfn main() {\n    let app: Router = Router::new()\n"
    text += "".join(f"        .route(\"/{i}\", get(h{i}))\n" for i in range(n))
    text += "        .with_state(ApiKeys::new());\n    let _ = std::hint::black_box(app);\n}\n"
    return text


VARIANTS = ["plain", "extractor", "api_key", "api_key_header", "api_key_scopes", "api_key_full"]


def generate(n, runtime):
    members = ", ".join(f'"{v}"' for v in VARIANTS)
    (OUT).mkdir(parents=True, exist_ok=True)
    (OUT / "Cargo.toml").write_text(
        f"[workspace]\nresolver = \"3\"\nmembers = [{members}]\n"
    )
    for variant in VARIANTS:
        crate = OUT / variant
        (crate / "src").mkdir(parents=True, exist_ok=True)
        (crate / "Cargo.toml").write_text(
            f"""[package]
name = "{variant.replace('_', '-')}"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
axum-api-key = {{ path = "{runtime}", default-features = false }}
axum = {{ version = "0.8.9", default-features = false, features = ["tokio"] }}
"""
        )
        (crate / "src" / "main.rs").write_text(source(variant, n))


def build(variant, env):
    main = OUT / variant / "src" / "main.rs"
    os.utime(main)
    start = time.perf_counter()
    subprocess.run(
        ["cargo", "build", "--quiet", "-p", variant.replace("_", "-")],
        cwd=OUT, env=env, check=True,
    )
    return time.perf_counter() - start


def expanded_lines(variant, env):
    """The lines of the crate's code after macro expansion, formatted by rustfmt."""
    out = subprocess.run(
        ["cargo", "rustc", "--quiet", "-p", variant.replace("_", "-"), "--", "-Zunpretty=expanded"],
        # A target directory of its own: `RUSTC_BOOTSTRAP` changes every fingerprint, and the
        # timed builds must not rebuild their dependencies afterwards.
        cwd=OUT,
        env=dict(env, RUSTC_BOOTSTRAP="1", CARGO_TARGET_DIR=str(OUT / "target-expanded")),
        check=True, capture_output=True, text=True,
    ).stdout
    formatted = subprocess.run(
        ["rustfmt", "--edition", "2024", "--emit", "stdout"],
        input=out, check=True, capture_output=True, text=True,
    ).stdout
    return len([line for line in formatted.splitlines() if line.strip()])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--handlers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runtime", type=pathlib.Path, default=ROOT / "runtime")
    parser.add_argument("--lines-only", action="store_true")
    args = parser.parse_args()
    generate(args.handlers, args.runtime.resolve())
    # Incremental compilation would reuse the last build of an untouched file: every build here
    # compiles the crate from scratch.
    env = dict(os.environ, CARGO_TARGET_DIR=str(OUT / "target"), CARGO_INCREMENTAL="0")
    # The lock file of the main workspace pins the same dependency versions.
    lock = ROOT / "Cargo.lock"
    if lock.exists() and not (OUT / "Cargo.lock").exists():
        (OUT / "Cargo.lock").write_text(lock.read_text())
    for variant in VARIANTS:
        build(variant, env)  # dependencies, and a first build to warm caches
    lines = {v: expanded_lines(v, env) for v in VARIANTS}
    print("Lines of expanded code each handler adds to a plain one (non-blank, rustfmt):")
    for variant in VARIANTS[1:]:
        print(f"  {variant}: {(lines[variant] - lines['plain']) / args.handlers:.1f}")
    print()
    if args.lines_only:
        return
    times = {v: [] for v in VARIANTS}
    for round_ in range(args.rounds):
        shift = round_ % len(VARIANTS)
        order = VARIANTS[shift:] + VARIANTS[:shift]
        for variant in order:
            times[variant].append(build(variant, env))
    print(f"{args.handlers} handlers, {args.rounds} rounds, `cargo build` (dev profile, not incremental) of the crate alone")
    print()
    print("| variant | median | ratio to plain (median of rounds) | spread of ratios |")
    print("| --- | --- | --- | --- |")
    for variant in VARIANTS:
        ratios = [t / p for t, p in zip(times[variant], times["plain"])]
        print(
            f"| {variant} | {statistics.median(times[variant]):.2f} s "
            f"| {statistics.median(ratios):.3f} | {min(ratios):.3f} to {max(ratios):.3f} |"
        )
    print()
    for variant in VARIANTS[2:]:
        per = (statistics.median(times[variant]) - statistics.median(times["plain"])) / args.handlers
        print(f"{variant} - plain, per handler: {per * 1000:.1f} ms")


if __name__ == "__main__":
    main()
