#!/usr/bin/env python3
"""Every Rust block of the README, pasted into a new crate with only what the README says.

The README's first `[dependencies]` block is what a reader adds to start with; a `##` section that
needs more says so in a `[dependencies]` block of its own (the features of `axum-api-key` it
turns on, the crates it uses). Each section's Rust blocks go, as doc tests, into a new crate
whose `Cargo.toml` holds exactly those dependencies (the README's `git = "<this repository's
URL>"` pointing at this checkout), and `cargo test --doc` compiles every block and runs every
one not marked `no_run`, as rustdoc does for the reader's own crate.

    python3 scripts/readme_crates.py [--list]

`--list` prints each crate's dependencies and blocks without building. The crates are written
under the workspace's target directory (`readme-crates/`), built in a target directory of their
own there, and resolved from a copy of the workspace's `Cargo.lock`, so that a new release of a
dependency cannot make the check differ from the tests.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLACEHOLDER = 'git = "<this repository\'s URL>"'


def fences(text):
    """Each fenced block of the README: (line, info string, body, the `##` section it is in)."""
    section = ""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip()
        match = re.match(r"^```(.*)$", line)
        if match:
            info = match.group(1).strip()
            start = i + 1
            i += 1
            while i < len(lines) and lines[i] != "```":
                i += 1
            if i == len(lines):
                sys.exit(f"README.md:{start}: a fence that is never closed")
            yield start, info, "\n".join(lines[start:i]), section
        i += 1


def dependencies(block, line):
    """The `[dependencies]` of a toml block, with the placeholder pointing at this checkout."""
    runtime = os.path.join(ROOT, "runtime")
    if PLACEHOLDER not in block and "axum-api-key" in block:
        sys.exit(f"README.md:{line}: axum-api-key without {PLACEHOLDER}")
    parsed = tomllib.loads(block.replace(PLACEHOLDER, f"path = {json.dumps(runtime)}"))
    return parsed["dependencies"]


def merged(base, extra):
    """`base` with `extra` added: a crate named in both gets the features of both."""
    out = {name: (dict(spec) if isinstance(spec, dict) else {"version": spec}) for name, spec in base.items()}
    for name, spec in extra.items():
        spec = dict(spec) if isinstance(spec, dict) else {"version": spec}
        if name in out:
            features = sorted(set(out[name].get("features", [])) | set(spec.get("features", [])))
            out[name].update(spec)
            if features:
                out[name]["features"] = features
        else:
            out[name] = spec
    return out


def toml_value(value):
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def crates(text):
    """The new crates: (name, dependencies, [(line, info, body)]) for each `##` section with Rust."""
    base = None
    extra = {}
    blocks = {}
    order = []
    for line, info, body, section in fences(text):
        if info == "toml" and body.lstrip().startswith("[dependencies]"):
            deps = dependencies(body, line)
            if base is None:
                base = deps
            elif section in extra:
                sys.exit(f"README.md:{line}: a second [dependencies] block in '{section}'")
            else:
                extra[section] = deps
        elif info.split(",")[0].split(" ")[0] == "rust":
            if section not in blocks:
                blocks[section] = []
                order.append(section)
            blocks[section].append((line, info, body))
    if base is None:
        sys.exit("README.md: no [dependencies] block")
    for section in extra:
        if section not in blocks:
            sys.exit(f"README.md: '{section}' adds dependencies but has no Rust block")
    # One crate per set of dependencies: the sections that add nothing share the first.
    out = {}
    for section in order:
        deps = merged(base, extra.get(section, {}))
        key = json.dumps(deps, sort_keys=True)
        if key not in out:
            slug = re.sub(r"[^a-z0-9]+", "-", section.lower()).strip("-")
            out[key] = ("readme-" + (slug if section in extra else "base"), deps, [])
        out[key][2].extend(blocks[section])
    return list(out.values())


def main():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    plan = crates(readme)
    if "--list" in sys.argv:
        for name, deps, blocks in plan:
            print(f"{name}: {', '.join(f'{n} {toml_value(s)}' for n, s in deps.items())}")
            for line, info, _ in blocks:
                print(f"    README.md:{line} ({info})")
        return
    metadata = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps", "--locked"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout
    )
    top = os.path.join(metadata["target_directory"], "readme-crates")
    os.makedirs(top, exist_ok=True)
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(top, "target"))
    failed = []
    for name, deps, blocks in plan:
        crate = os.path.join(top, name)
        shutil.rmtree(crate, ignore_errors=True)
        os.makedirs(os.path.join(crate, "src"))
        manifest = [
            "[package]",
            f'name = "{name}"',
            'version = "0.0.0"',
            'edition = "2024"',
            "publish = false",
            "",
            "[workspace]",
            "",
            "[dependencies]",
        ] + [f"{n} = {toml_value(s)}" for n, s in deps.items()]
        with open(os.path.join(crate, "Cargo.toml"), "w", encoding="utf-8") as f:
            f.write("\n".join(manifest) + "\n")
        shutil.copy(os.path.join(ROOT, "Cargo.lock"), os.path.join(crate, "Cargo.lock"))
        # Each block as the README prints it, with the README's line for the failures.
        docs = "\n\n".join(f"README.md line {line}:\n\n```{info}\n{body}\n```" for line, info, body in blocks)
        with open(os.path.join(crate, "src", "README.md"), "w", encoding="utf-8") as f:
            f.write(docs + "\n")
        with open(os.path.join(crate, "src", "lib.rs"), "w", encoding="utf-8") as f:
            f.write('#![doc = include_str!("README.md")]\n')
        print(f"== {name}: {len(blocks)} block(s), with {', '.join(deps)}", flush=True)
        result = subprocess.run(["cargo", "test", "--doc", "-q"], cwd=crate, env=env)
        if result.returncode != 0:
            failed.append(name)
    if failed:
        sys.exit(f"README blocks that do not build as printed, in: {', '.join(failed)}")
    print(f"every README Rust block builds in a new crate with the README's dependencies ({sum(len(b) for _, _, b in plan)} blocks, {len(plan)} crates)")


if __name__ == "__main__":
    main()
