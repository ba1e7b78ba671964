#!/usr/bin/python3
"""Lists the longest C++ function definitions under the given folders.

A definition is a top-level (or namespace-level) declaration whose body opens
with `{` and is not a namespace, class, struct, enum or union; its length is
counted in lines from its first line to the closing brace, lambdas included.

Usage: scripts/function-lengths.py [--limit N] [--top K] DIR...
Exit status 1 when a function is longer than --limit (default: no limit).
"""
import argparse
import os
import re
import sys

NOT_FUNCTION = re.compile(r"^\s*(namespace|class|struct|enum|union|extern)\b|=\s*\{?\s*$|^\s*(template\s*<[^>]*>\s*)?(class|struct)\b")


def strip(line):
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])*'", "''", line)
    return line.split("//")[0]


def functions(path):
    with open(path, errors="replace") as f:
        lines = f.readlines()
    depth, stack, results, pending = 0, [], [], []
    # stack entries: (kind, start line, name) for braces we track
    for i, raw in enumerate(lines):
        line = strip(raw)
        for ch in line:
            if ch == "{":
                header = "".join(strip(l) for l in pending[-6:]) + line[: line.index("{") + 1]
                is_container = all(k in ("ns", "type") for k, _, _ in stack)
                kind = "other"
                if is_container:
                    head = header.strip()
                    if re.search(r"\bnamespace\b[^;{]*\{$", head):
                        kind = "ns"
                    elif re.search(r"\b(class|struct|union|enum)\b[^;(){]*\{$", head):
                        kind = "type"
                    elif ")" in head or "->" in head:
                        kind = "fn"
                stack.append((kind, i, header))
            elif ch == "}":
                if not stack:
                    continue
                kind, start, header = stack.pop()
                if kind == "fn":
                    # first line of the signature: walk back over continuation lines
                    s = start
                    while s > 0 and strip(lines[s - 1]).strip() and not re.search(r"[;{}]\s*$", strip(lines[s - 1]).rstrip()) \
                            and not strip(lines[s - 1]).lstrip().startswith("#"):
                        s -= 1
                    name = re.sub(r"\s+", " ", "".join(l.strip() + " " for l in lines[s:start + 1]))[:110]
                    results.append((i - s + 1, path, s + 1, name))
        pending.append(raw)
        if len(pending) > 8:
            pending.pop(0)
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    found = []
    for d in args.dirs:
        for root, _, files in os.walk(d):
            for fn in files:
                if fn.endswith((".cpp", ".h")):
                    found += functions(os.path.join(root, fn))
    found.sort(reverse=True)
    for n, path, line, name in found[: args.top]:
        print(f"{n:5d}  {path}:{line}  {name}")
    over = [f for f in found if args.limit and f[0] > args.limit]
    if args.limit:
        print(f"{len(over)} function(s) longer than {args.limit} lines")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
