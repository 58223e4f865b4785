#!/usr/bin/env python3
# A copy of the workplace tool ../shared/tools/layering.py, so a clean clone can run the
# check (.ci/run prefers ../shared/tools/layering.py when it exists). Do not edit here.
"""Module layering of a Rust crate: import cycles between src/ modules, and handler size.

Usage (from the crate's checkout):  python3 layering.py [--max-cycle-files N] [--max-handler N]

A module is a file under src/ (a folder's mod.rs is the folder), and likewise under each
crates/*/src/ of a workspace, each crate on its own. An edge a -> b exists when a's code
names `crate::b`, `super::b` or `self::b` (in a `use` or a path, groups included), doc
comments excluded; an edge between a module and one that contains it is not counted. A
cycle is a strongly connected component of two or more modules. Handlers are the `async fn` items of
src/routes/**.rs; their length is counted in lines from the signature to the closing brace.
Prints the cycles, the longest handlers, and one last line with the figures.
Exit 0 when the figures are within the limits given, 1 otherwise.
"""
import argparse
import re
import sys
from pathlib import Path


def module_name(path: Path, src: Path) -> str:
    rel = path.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return "::".join(parts) or "crate"


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def resolve(target: str, modules: set[str]) -> str | None:
    parts = target.split("::")
    for n in range(len(parts), 0, -1):
        candidate = "::".join(parts[:n])
        if candidate in modules:
            return candidate
    return None


PATH = r"(?:[a-z_][a-z0-9_]*::)*[a-z_][a-z0-9_]*"


def absolute(prefix: str, rest: str, name: str, is_dir_module: bool) -> str:
    """`crate::x`, `super::x` or `self::x` as seen from module `name`, as a crate path."""
    here = [] if name == "crate" else name.split("::")
    # a file module's `self` is itself; `super` is its parent (mod.rs: the folder's parent)
    if prefix == "crate":
        base = []
    elif prefix == "self":
        base = here
    else:
        base = here[:-1]
        while rest.startswith("super::"):
            rest, base = rest[len("super::"):], base[:-1]
    return "::".join(base + ([rest] if rest else []))


def edges_of(src: Path, modules: dict[str, Path]) -> dict[str, set[str]]:
    names = set(modules)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        text = strip_comments(path.read_text(errors="replace"))
        targets = set()
        for prefix in ("crate", "super", "self"):
            pat = rf"(?<![a-z0-9_:]){prefix}::((?:super::)*{PATH})"
            for rest in re.findall(pat, text):
                targets.add(absolute(prefix, rest, name, path.name == "mod.rs"))
            # `use crate::{a, b::c}` / `use super::{x, y}` groups
            for group in re.findall(rf"(?<![a-z0-9_:]){prefix}::((?:super::)*){{([^}}]*)}}",
                                    text, flags=re.S):
                supers, items = group
                for item in items.split(","):
                    item = item.strip().split(" as ")[0].replace("{", "").strip()
                    if item and re.fullmatch(PATH, item):
                        targets.add(absolute(prefix, supers + item, name, path.name == "mod.rs"))
        for target in targets:
            module = resolve(target, names)
            if module and module != name and not module.startswith(name + "::") \
                    and not name.startswith(module + "::") and module != "crate":
                graph[name].add(module)
    return graph


def sccs(graph: dict[str, set[str]]) -> list[list[str]]:
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def handler_lengths(src: Path) -> list[tuple[int, str]]:
    found = []
    for path in sorted((src / "routes").rglob("*.rs")) if (src / "routes").exists() else []:
        lines = path.read_text(errors="replace").splitlines()
        i = 0
        while i < len(lines):
            if re.match(r"\s*(pub(\([^)]*\))?\s+)?async fn\s+\w+", lines[i]):
                name = re.search(r"async fn\s+(\w+)", lines[i]).group(1)
                depth, started, j = 0, False, i
                while j < len(lines):
                    depth += lines[j].count("{") - lines[j].count("}")
                    started = started or "{" in lines[j]
                    if started and depth <= 0:
                        break
                    j += 1
                found.append((j - i + 1, f"{path.relative_to(src.parent)}:{i + 1} {name}"))
                i = j
            i += 1
    return sorted(found, reverse=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-cycle-files", type=int, default=0)
    parser.add_argument("--max-handler", type=int, default=40)
    args = parser.parse_args()
    src = Path("src")
    if not src.is_dir():
        print("no src/ here")
        return 2
    cycles = []
    for root in [src, *sorted(Path("crates").glob("*/src"))]:
        modules = {module_name(p, root): p for p in root.rglob("*.rs")}
        for cycle in sccs(edges_of(root, modules)):
            cycles.append([f"{root.parent}/{m}" if root != src else m for m in cycle])
    in_cycles = sum(len(c) for c in cycles)
    for cycle in cycles:
        print(f"cycle of {len(cycle)}: {', '.join(cycle)}")
    handlers = handler_lengths(src)
    for length, where in handlers[:8]:
        print(f"handler {length:4d} lines  {where}")
    longest = handlers[0][0] if handlers else 0
    ok = in_cycles <= args.max_cycle_files and longest <= args.max_handler
    print(f"layering: {len(cycles)} cycles over {in_cycles} modules (limit "
          f"{args.max_cycle_files}); longest handler {longest} lines (limit {args.max_handler})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
