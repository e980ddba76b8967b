#!/usr/bin/env python3
"""The imports between the source files of each published crate, and the circles among them.

    python3 scripts/import_graph.py          # the circles, if any (exit 1 when there is one)
    python3 scripts/import_graph.py --why    # with the paths that make each import
    python3 scripts/import_graph.py --dot    # the graph, for `dot -Tsvg`

A file imports another when it names an item through it: `crate::store::file::X`,
`super::live::Y`, `use crate::{key::Key, limit}` (the module path is resolved to the longest
prefix that is a file of the crate, through `pub use` re-exports, to the file that defines the
item). Unit tests (`#[cfg(test)] mod tests`, inline or in a `tests.rs`) use the crate and are
left out. A module naming its
own submodules (declaring them, re-exporting what they define) is structure, not an import, and
is left out; a submodule naming its parent is kept. Any Rust file of the repository over 600
lines (sources, tests, examples, benchmarks) is listed too.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = {"axum-api-key": "runtime/src", "axum-api-key-macros": "macros/src"}
MAX_LINES = 600


def modules(src):
    """Each module path (a tuple) of the crate with its file."""
    out = {}
    for directory, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(directory, name)
            rel = os.path.relpath(path, src)[: -len(".rs")].split(os.sep)
            if rel[0] == "bin" or rel[-1] == "tests":
                continue  # the command-line tool is a crate of its own; unit tests use the crate
            if rel[-1] in ("mod", "lib"):
                rel = rel[:-1]
            out[tuple(rel)] = path
    return out


def strip(text):
    """The text without comments and string literals."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'r(#*)".*?"\1', '""', text, flags=re.S)
    text = re.sub(r'"(\\.|[^"\\])*"', '""', text, flags=re.S)
    return text


def expand(prefix, group):
    """The paths of a `use` group: `a::{b, c::{d, e}}` after `prefix`."""
    paths = []
    depth = 0
    part = ""
    for ch in group + ",":
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            part = part.strip()
            if part:
                match = re.match(r"^([\w:]*?)::\{(.*)\}$", part, flags=re.S)
                if match:
                    paths += expand(prefix + match.group(1).split("::"), match.group(2))
                elif part.startswith("{"):
                    paths += expand(prefix, part[1:-1])
                else:
                    paths.append(prefix + part.split(" as ")[0].strip().split("::"))
            part = ""
        else:
            part += ch
    return paths


def references(text, here):
    """The absolute paths (lists of segments) a file names through `crate`, `super`, `self`."""
    text = strip(text)
    out = []
    for match in re.finditer(r"\b(crate|super|self)((?:::\w+)*)::\{", text):
        start = match.end()
        depth = 1
        i = start
        while depth and i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        head = [match.group(1)] + [s for s in match.group(2).split("::") if s]
        out += expand(head, text[start : i - 1])
    for match in re.finditer(r"\b(crate|super|self)((?:::\w+)+)", text):
        out.append([match.group(1)] + [s for s in match.group(2).split("::") if s])
    absolute = []
    for path in out:
        base = list(here)
        while path and path[0] in ("super", "self", "crate"):
            head = path.pop(0)
            if head == "crate":
                base = []
            elif head == "super":
                base = base[:-1]
        absolute.append(base + [s for s in path if s and s != "self"])
    return absolute


def reexports(text, here):
    """What a module's `pub use` items bind: {name: absolute path}."""
    out = {}
    for match in re.finditer(r"\bpub(?:\([\w:]+\))?\s+use\s+([^;]+);", strip(text)):
        tree = match.group(1).strip()
        for path in expand([], tree) if "{" in tree else [tree.split(" as ")[0].strip().split("::")]:
            alias = re.search(r"\bas\s+(\w+)", tree) if "{" not in tree else None
            bound = alias.group(1) if alias else path[-1]
            absolute = references("x::" + "::".join(path) if path[0] not in ("crate", "super", "self") else "::".join(path), here)
            if path[0] in ("crate", "super", "self") and absolute:
                out[bound] = absolute[-1]
            elif path[0] not in ("crate", "super", "self", "std", "core", "alloc"):
                out[bound] = list(here) + path  # a submodule's item: `pub use file::X`
    return out


def resolve(ref, mods, exports, depth=0):
    """The module file that defines what `ref` names, through `pub use` re-exports."""
    for cut in range(len(ref), -1, -1):
        module = tuple(ref[:cut])
        if module in mods:
            break
    if cut < len(ref) and depth < 8:
        target = exports.get(module, {}).get(ref[cut])
        if target is not None and target != ref:
            return resolve(target + ref[cut + 1 :], mods, exports, depth + 1)
    return module


def code(text):
    """A file's text without its unit tests (`#[cfg(test)] mod tests`), which use the crate
    rather than make it."""
    match = re.search(r"^#\[cfg\(test\)\]\s*\n\s*mod tests\b", text, flags=re.M)
    return text[: match.start()] if match else text


def graph(src):
    mods = modules(src)
    texts = {here: code(open(path, encoding="utf-8").read()) for here, path in mods.items()}
    exports = {here: reexports(text, here) for here, text in texts.items()}
    edges = {}
    for here, text in texts.items():
        targets = {}
        for ref in references(text, here):
            target = resolve(ref, mods, exports)
            if target == here or target[: len(here)] == here:
                continue  # the module itself, or one of its own submodules
            targets.setdefault(target, set()).add("::".join(ref))
        edges[here] = targets
    return mods, edges


def cycles(edges):
    """The strongly connected components with more than one module (Tarjan)."""
    index = {}
    low = {}
    stack = []
    on = set()
    out = []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def name(module):
    return "::".join(module) or "lib"


def main():
    failed = False
    for crate, src in CRATES.items():
        mods, edges = graph(os.path.join(ROOT, src))
        if "--dot" in sys.argv:
            print(f'digraph "{crate}" {{')
            for v in sorted(edges):
                for w in sorted(edges[v]):
                    print(f'  "{name(v)}" -> "{name(w)}";')
            print("}")
            continue
        found = cycles(edges)
        for component in found:
            failed = True
            print(f"{crate}: an import circle among {', '.join(name(m) for m in component)}")
            for v in component:
                inside = sorted(
                    name(w) + (f" ({', '.join(sorted(edges[v][w]))})" if "--why" in sys.argv else "")
                    for w in edges[v]
                    if w in component
                )
                print(f"    {name(v)} -> {', '.join(inside)}")
        for module, path in sorted(mods.items()):
            lines = sum(1 for _ in open(path, encoding="utf-8"))
            if lines > MAX_LINES:
                failed = True
                print(f"{crate}: {os.path.relpath(path, ROOT)} has {lines} lines (at most {MAX_LINES})")
        if not found:
            print(f"{crate}: {len(mods)} modules, {sum(len(e) for e in edges.values())} imports, no circle")
    # Every other Rust file of the repository (tests, examples, benchmarks, the command-line
    # tool) is held to the same length.
    if "--dot" not in sys.argv:
        for directory, dirs, files in os.walk(ROOT):
            dirs[:] = [d for d in dirs if d not in ("target", ".git", "node_modules")]
            for file_name in sorted(files):
                path = os.path.join(directory, file_name)
                rel = os.path.relpath(path, ROOT)
                if not file_name.endswith(".rs") or any(rel.startswith(src) for src in CRATES.values()) and "/bin/" not in rel:
                    continue
                lines = sum(1 for _ in open(path, encoding="utf-8"))
                if lines > MAX_LINES:
                    failed = True
                    print(f"{rel} has {lines} lines (at most {MAX_LINES})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
