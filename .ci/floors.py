#!/usr/bin/env python3
"""The dependency rule of docs/architecture.md, checked: no import in src/ runs back up.

Each top-level module of the service's crate (or a submodule named `a::b`) sits on a
floor (FLOORS below, top first); a module may use modules on its own floor or below,
never above. Every `crate::a::…` path in a file (in `use` declarations and in
expressions) is one import of module `a` (or of `a::b` when that has a floor of its own).
`layering.py` (../shared/tools) finds cycles; this finds the imports that point the
wrong way even when they make no cycle yet.

Usage: python3 .ci/floors.py [SRC_DIR]   exit 1 and a line per import that runs up.
"""
import os
import re
import sys

# Top first. A module not listed is an error (a new module must be given its floor).
FLOORS = [
    ("composition root", {"app"}),
    ("routes", {"routes"}),
    ("use cases", {"checkout", "external_checkout", "cancellation", "webhooks",
                   "notifications", "reconciliation", "install", "operator", "duplicates",
                   "capture", "retention"}),
    ("shared by the use cases", {"services", "order_updates", "upstream", "merchant"}),
    # error: the §3 envelope every failure is answered with (a Cafe24 wire rule).
    ("adapters", {"cafe24", "komoju", "db", "metrics", "error"}),
    ("domain and base", {"orders", "money", "keys", "secrets", "clock", "text", "urls", "i18n",
                         "merchant::kinds"}),
]
LEVEL = {m: len(FLOORS) - i for i, (_, mods) in enumerate(FLOORS) for m in mods}
NAME = {len(FLOORS) - i: name for i, (name, _) in enumerate(FLOORS)}

PATH = re.compile(r"\bcrate::(\w+)(?:::(\w+))?")
USE_GROUP = re.compile(r"\buse\s+crate::\{([^;]*)\};", re.S)


def floored(top, sub):
    """The module with a floor of its own that `crate::top::sub` names."""
    return f"{top}::{sub}" if f"{top}::{sub}" in LEVEL else top


def imports(text):
    """The top-level modules a file names through `crate::`."""
    text = re.sub(r"//[^\n]*", "", text)  # comments (doc links are not imports)
    found = {floored(a, b) for a, b in PATH.findall(text)}
    for group in USE_GROUP.findall(text):
        for item in re.split(r",(?![^{]*\})", group):
            parts = [p.strip("{} \n") for p in item.strip().split("::")]
            if parts[0] and parts[0] != "self":
                found.add(floored(parts[0], parts[1] if len(parts) > 1 else ""))
    return found


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "src"
    bad, unknown = [], set()
    for top in sorted(os.listdir(src)):
        module = top[:-3] if top.endswith(".rs") else top
        if module in ("lib", "main"):
            continue
        if module not in LEVEL:
            unknown.add(module)
            continue
        path = os.path.join(src, top)
        files = [path] if top.endswith(".rs") else [
            os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs if f.endswith(".rs")]
        for f in sorted(files):
            rel = os.path.relpath(f, src)[:-3].split(os.sep)
            own = floored(rel[0], rel[1] if len(rel) > 1 else "")
            text = open(f, encoding="utf-8").read()
            text = text.split("#[cfg(test)]")[0]  # tests may reach anywhere
            for used in sorted(imports(text)):
                if used not in LEVEL:
                    if os.path.exists(os.path.join(src, used)) or os.path.exists(
                            os.path.join(src, used + ".rs")):
                        unknown.add(used)
                    continue
                if LEVEL[used] > LEVEL[own]:
                    bad.append(f"{f}: {own} ({NAME[LEVEL[own]]}) uses {used} "
                               f"({NAME[LEVEL[used]]})")
    for line in bad:
        print("runs up:", line)
    for module in sorted(unknown):
        print(f"no floor: module {module} is not in .ci/floors.py FLOORS")
    print(f"floors: {len(bad)} imports run up, {len(unknown)} modules without a floor")
    return 1 if bad or unknown else 0


if __name__ == "__main__":
    sys.exit(main())
