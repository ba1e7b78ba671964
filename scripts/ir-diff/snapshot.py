#!/usr/bin/python3
"""Snapshot the IR the compiler generates, and compare two snapshots.

    snapshot.py take OUTDIR [--bin DIR] [--jobs 2] [--only SUBSTRING] [--python-normalise]
    snapshot.py compare DIR_A DIR_B

``take`` runs every case (lit RUN lines that print IR, the examples through the pipelines, the
GPU device-test and benchmark modules through the NVVM pipeline) with the tools of DIR
(default: build/bin of this repository) and writes one normalised text file per case
(``<case>.ir``) plus ``INDEX.json`` into OUTDIR. A case whose command fails is recorded with
its exit status and stderr, so a failure is compared like any output.

Normalisation: the output is re-parsed by ``attn-opt --canonicalize --cse`` (with
``-split-input-file`` when the command had it), so constant order, folded ``x + 0`` and SSA
names do not count. Output that does not parse is normalised in Python instead: constant
definitions are deleted and their uses replaced by the constant's text, and the remaining SSA
values are renamed by first appearance within each function (``%argN`` are kept). String
attributes (the PTX of ``gpu.binary``) are compared exactly.

``compare`` prints the differing cases with a short unified diff each and the cases present
on one side only; exits 1 if anything differs, 0 if the snapshots are identical.
"""

import argparse
import concurrent.futures
import difflib
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # importing the build scripts must not write into the tree

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CASE_EXT = ".ir"
INDEX = "INDEX.json"
TIMEOUT_S = 900
MAX_STDERR_LINES = 200

# Example pipelines: label -> attn-opt arguments.
_PREFIX = ["--attn-expand-composite", "--attn-unpack-cache-arguments", "--canonicalize"]
EXAMPLE_PIPELINES = {
    "cpu": ["--attn-lower-to-cpu"],
    "cpu-nofuse": ["--attn-lower-to-cpu=fuse=false"],
    "nvvm-isa": ["--attn-lower-to-nvvm=format=isa"],
    "nvvm-isa-nofuse": ["--attn-lower-to-nvvm=format=isa fuse=false"],
    "nvvm-isa-nowgmma": ["--attn-lower-to-nvvm=format=isa wgmma=false"],
    "to-gpu": _PREFIX + ["--convert-attn-to-gpu"],
    "to-linalg": _PREFIX + ["--convert-attn-to-linalg"],
}


# ---------------------------------------------------------------------------------------------
# Cases


class Case:
    """``argv`` run with the bin dir first on PATH; ``stdin_text`` (if any) is written to a
    file named ``input_name`` in a scratch folder and ``{input}`` in argv replaced by it."""

    def __init__(self, name, kind, argv, split=False, source="", stdin_text=None,
                 input_name=None):
        self.name, self.kind, self.argv, self.split = name, kind, argv, split
        self.source, self.input_text, self.input_name = source, stdin_text, input_name

    def display(self):
        return " ".join(shlex.quote(a) for a in self.argv).replace(REPO, "<ROOT>")


def _sanitize(name):
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", name)


def _split_pipe(cmd):
    """The command up to its first unquoted ``|``."""
    quote = None
    for i, ch in enumerate(cmd):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "|":
            return cmd[:i]
    return cmd


def _run_lines(path):
    """(line number, command) of each RUN line (``\\`` continuations joined)."""
    out, pending, start = [], None, 0
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            m = re.search(r"RUN:(.*)$", line)
            if not m:
                continue
            text = m.group(1).strip()
            if pending is None:
                pending, start = "", lineno
            if text.endswith("\\"):
                pending += text[:-1] + " "
                continue
            out.append((start, (pending + text).strip()))
            pending = None
    if pending:
        out.append((start, pending.strip()))
    return out


def lit_cases():
    cases, skipped = [], []
    test_root = os.path.join(REPO, "test")
    for dirpath, dirnames, filenames in os.walk(test_root):
        dirnames[:] = sorted(d for d in dirnames
                             if os.path.join(dirpath, d) != os.path.join(test_root, "gpu")
                             and d != "Inputs")
        for fn in sorted(filenames):
            if not fn.endswith((".mlir", ".test")):
                continue
            path = os.path.join(dirpath, fn)
            rel = os.path.relpath(path, test_root)
            for lineno, cmd in _run_lines(path):
                where = f"test/{rel}:{lineno}"
                if (re.search(r"(^|\s)not\s", cmd) or "-verify-diagnostics" in cmd
                        or "--mlir-print-ir-after" in cmd or "2>&1" in cmd):
                    if re.match(r"(not\s+)?attn-(opt|compile)\b", cmd):
                        skipped.append(where)
                    continue
                first = _split_pipe(cmd).strip()
                is_opt = re.match(r"attn-opt\s+(%s|%attn_src_root/)", first)
                is_compile = re.match(r"attn-compile\s", first) and "--emit=mlir" in first
                if not (is_opt or is_compile):
                    continue
                first = first.replace("%attn_src_root", REPO)
                argv = shlex.split(first)
                argv = [path if a == "%s" else a for a in argv]
                # Output to stdout (attn-compile requires -o).
                argv = [a for a in argv if not a.startswith("-o=")]
                for i in reversed([i for i, a in enumerate(argv) if a == "-o"]):
                    del argv[i:i + 2]
                argv += ["-o", "-"]
                if any("%" in a and a != "%" for a in argv if a.startswith("%")):
                    skipped.append(where + " (unknown substitution)")
                    continue
                split = any(a in ("-split-input-file", "--split-input-file") for a in argv)
                cases.append(Case(f"lit__{_sanitize(rel)}__L{lineno}", "lit", argv, split,
                                  where))
    return cases, skipped


def example_cases():
    cases = []
    for fn in sorted(os.listdir(os.path.join(REPO, "examples"))):
        if not fn.endswith(".mlir"):
            continue
        path = os.path.join(REPO, "examples", fn)
        for label, args in EXAMPLE_PIPELINES.items():
            cases.append(Case(f"ex__{fn[:-5]}__{label}", "example", ["attn-opt", path, *args],
                              source=f"examples/{fn}"))
    return cases


def _nvvm_case(prefix, module, text, nofuse):
    opt = "--attn-lower-to-nvvm=format=isa" + (" fuse=false" if nofuse else "")
    return Case(f"{prefix}__{module}", prefix, ["attn-opt", "{input}", opt],
                source=f"{module}.mlir", stdin_text=text, input_name=f"{module}.mlir")


def device_cases():
    """The device-test modules of test/gpu/build_device_tests.py (its own generation code)."""
    sys.path[:0] = [os.path.join(REPO, "python"), os.path.join(REPO, "test", "gpu")]
    import build_device_tests as bdt
    texts = bdt.module_texts(bdt.all_cases())
    return [_nvvm_case("dev", m, t, m.endswith("_unfused")) for m, t in sorted(texts.items())]


def bench_cases():
    """The GPU benchmark modules (benchmarks/gpu/build_bench*.py)."""
    sys.path[:0] = [os.path.join(REPO, "python"), os.path.join(REPO, "benchmarks", "gpu"),
                    os.path.join(REPO, "test", "gpu")]
    import build_bench as bb
    import build_bench_fusion as bbf
    import build_bench_stack as bbs
    texts, _ = bb.module_texts()
    texts.update(bbf.module_texts(bbf.llama3_8b()))
    texts.update(bbs.module_texts(bbs.stack.MODELS["llama3-8b"]))
    return [_nvvm_case("bench", m, t, m.endswith("_unfused")) for m, t in sorted(texts.items())]


# ---------------------------------------------------------------------------------------------
# Normalisation

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_CONST = re.compile(r"^\s*(%[A-Za-z0-9_$.\-]+) = ((?:arith\.constant|llvm\.mlir\.constant)\b.*?)"
                    r"\s*(?:loc\(.*\))?\s*$")
_TIMES = re.compile(r"\b(\w+TimeInMs) = \d+( : i64)?")
_SCOPE = re.compile(r"^\s*(//\s*-----|.*\b(?:func\.func|llvm\.func|gpu\.func)\s+"
                    r"(?:(?:private|public|nested|internal|external|linkonce_odr)\s+)*@)")


def _map_code(line, fn):
    """Applies ``fn`` to the parts of ``line`` outside string literals."""
    out, pos = [], 0
    for m in _STRING.finditer(line):
        out.append(fn(line[pos:m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(fn(line[pos:]))
    return "".join(out)


def python_normalise(text):
    """Constants inlined into their uses, SSA values renamed per function."""
    scopes, cur = [], []
    for line in text.splitlines():
        if _SCOPE.match(line) and cur:
            scopes.append(cur)
            cur = []
        cur.append(line)
    scopes.append(cur)
    out = []
    for lines in scopes:
        consts, kept = {}, []
        for line in lines:
            m = _CONST.match(line) if '"' not in line else None
            if m:
                consts[m.group(1)[1:]] = "(" + m.group(2) + ")"
            else:
                kept.append(line)
        names = {}

        def rename(code):
            def sub(m):
                name = m.group(1)
                base, _, suffix = name.partition("#")
                if base in consts:
                    return consts[base]
                if re.fullmatch(r"arg\d+", base):
                    return m.group(0)
                new = names.setdefault(base, f"v{len(names)}")
                return "%" + new + (("#" + suffix) if suffix else "")
            return re.sub(r"%([A-Za-z0-9_$.\-]+(?:#\d+)?)", sub, code)

        out.extend(_map_code(line, rename) for line in kept)
    return "\n".join(out) + "\n"


def _clean_stderr(err, tmp, bindir):
    err = err.replace(tmp, "<TMP>").replace(bindir, "<BIN>").replace(REPO, "<ROOT>")
    for marker in ("PLEASE submit a bug report", "Stack dump:"):
        if marker in err:
            err = err[:err.index(marker)] + "<crash: stack dump omitted>\n"
    lines = err.splitlines()
    if len(lines) > MAX_STDERR_LINES:
        lines = lines[:MAX_STDERR_LINES] + [f"<{len(lines) - MAX_STDERR_LINES} more lines>"]
    return "\n".join(lines) + "\n"


def run_case(case, bindir, outdir, scratch, force_python):
    start = time.monotonic()
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    tmp = tempfile.mkdtemp(prefix=case.name[:40] + ".", dir=scratch)
    argv = list(case.argv)
    if case.input_text is not None:
        inp = os.path.join(tmp, case.input_name)
        with open(inp, "w") as f:
            f.write(case.input_text)
        argv = [inp if a == "{input}" else a for a in argv]
    argv[0] = os.path.join(bindir, argv[0]) if os.path.exists(os.path.join(bindir, argv[0])) \
        else argv[0]
    header = [f"// case: {case.name}", f"// source: {case.source}",
              f"// command: {case.display()}"]
    if case.input_text is not None:
        header.append("// input sha256: " + hashlib.sha256(case.input_text.encode()).hexdigest())
    status = "ok"
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp,
                              timeout=TIMEOUT_S)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired:
        rc, out, err = "timeout", "", f"timed out after {TIMEOUT_S} s\n"
    if rc != 0:
        status = f"FAILED ({rc})"
        header.append(f"// FAILED: exit status {rc}; stderr follows")
        body = _clean_stderr(err, tmp, bindir)
        norm = "none"
    else:
        norm_argv = [os.path.join(bindir, "attn-opt"), "--canonicalize", "--cse"]
        if case.split:
            norm_argv.append("-split-input-file")
        norm_argv.append("-")
        nproc = None
        if not force_python:
            nproc = subprocess.run(norm_argv, input=out, capture_output=True, text=True,
                                   env=env, cwd=tmp, timeout=TIMEOUT_S)
        if nproc is not None and nproc.returncode == 0:
            body, norm = nproc.stdout, "attn-opt --canonicalize --cse" + (
                " -split-input-file" if case.split else "")
        else:
            body, norm = python_normalise(out), "python (output did not re-parse)" \
                if not force_python else "python (forced)"
    # gpu.object properties record compile times (LLVMIRToISATimeInMs, ISAToBinaryTimeInMs).
    body = _TIMES.sub(r"\1 = <ms>", body)
    header.append(f"// normalised: {norm}")
    with open(os.path.join(outdir, case.name + CASE_EXT), "w") as f:
        f.write("\n".join(header) + "\n" + body)
    shutil.rmtree(tmp, ignore_errors=True)
    return case, status, norm, time.monotonic() - start


def take(args):
    bindir = os.path.abspath(args.bin or os.path.join(REPO, "build", "bin"))
    for tool in ("attn-opt", "attn-compile"):
        if not os.access(os.path.join(bindir, tool), os.X_OK):
            sys.exit(f"error: no {tool} in {bindir}")
    t0 = time.monotonic()
    lit, skipped = lit_cases()
    groups = {"lit": lit, "example": example_cases()}
    for label, fn in (("dev", device_cases), ("bench", bench_cases)):
        try:
            groups[label] = fn()
        except Exception as e:  # a broken generator must not hide the other cases
            print(f"error: cannot generate the {label} modules: {e!r}", file=sys.stderr)
            groups[label] = []
            skipped.append(f"{label} modules ({e!r})")
    cases = [c for g in groups.values() for c in g if args.only in c.name]
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), "duplicate case names"
    os.makedirs(args.outdir, exist_ok=True)
    for fn in os.listdir(args.outdir):  # a snapshot is one take: no stale cases
        if fn.endswith(CASE_EXT) or fn == INDEX:
            os.remove(os.path.join(args.outdir, fn))
    print(f"{len(cases)} cases (" + ", ".join(f"{k} {sum(1 for c in v if args.only in c.name)}"
                                              for k, v in groups.items())
          + f") with {bindir}, {args.jobs} jobs", flush=True)
    # The slow ones (NVVM pipelines) first, so that the pool ends together.
    order = sorted(cases, key=lambda c: (not any("nvvm" in a for a in c.argv), c.name))
    results = {}
    scratch = tempfile.mkdtemp(prefix="ir-snapshot.")
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(run_case, c, bindir, args.outdir, scratch,
                                   args.python_normalise) for c in order]
            for fut in concurrent.futures.as_completed(futures):
                case, status, norm, secs = fut.result()
                results[case.name] = (case, status, norm)
                print(f"  {secs:7.1f} s  {case.name}  {status}"
                      + ("" if norm.startswith("attn-opt") or norm == "none" else f" [{norm}]"),
                      flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    index = {"cases": {n: {"kind": c.kind, "source": c.source, "command": c.display(),
                           "status": s, "normalised": nm}
                       for n, (c, s, nm) in sorted(results.items())},
             "skipped_run_lines": skipped}
    with open(os.path.join(args.outdir, INDEX), "w") as f:
        json.dump(index, f, indent=1, sort_keys=True)
        f.write("\n")
    failed = sorted(n for n, (_, s, _) in results.items() if s != "ok")
    print(f"wrote {len(results)} cases to {args.outdir} in {time.monotonic() - t0:.1f} s"
          + (f"; {len(failed)} failed (recorded): {', '.join(failed)}" if failed else ""))
    return 0


# ---------------------------------------------------------------------------------------------
# Compare


def _display_lines(text):
    """For showing a diff only: PTX escapes expanded, long lines cut."""
    text = text.replace("\\0A", "\n").replace("\\09", "\t")
    return [ln if len(ln) <= 200 else ln[:200] + " ..." for ln in text.splitlines()]


def compare(args):
    def cases(d):
        return {fn[:-len(CASE_EXT)] for fn in os.listdir(d) if fn.endswith(CASE_EXT)}
    a, b = cases(args.dir_a), cases(args.dir_b)
    differ = 0
    for name in sorted(a & b):
        with open(os.path.join(args.dir_a, name + CASE_EXT)) as f:
            ta = f.read()
        with open(os.path.join(args.dir_b, name + CASE_EXT)) as f:
            tb = f.read()
        if ta == tb:
            continue
        # Constants inlined and values renamed: a refactor that only creates
        # constants in another order is not a difference.
        if not args.exact:
            ta, tb = python_normalise(ta), python_normalise(tb)
            if ta == tb:
                continue
        differ += 1
        diff = list(difflib.unified_diff(_display_lines(ta), _display_lines(tb),
                                         f"{args.dir_a}/{name}", f"{args.dir_b}/{name}",
                                         lineterm="", n=2))
        print(f"=== DIFFERS: {name}")
        print("\n".join(diff[:40]))
        if len(diff) > 40:
            print(f"... ({len(diff) - 40} more diff lines)")
    for name in sorted(a - b):
        print(f"=== ONLY IN {args.dir_a}: {name}")
    for name in sorted(b - a):
        print(f"=== ONLY IN {args.dir_b}: {name}")
    missing = len(a ^ b)
    print(f"{len(a & b)} common cases: {differ} differ; {len(a - b)} only in A, "
          f"{len(b - a)} only in B")
    return 1 if differ or missing else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("take", help="write a snapshot")
    t.add_argument("outdir")
    t.add_argument("--bin", help="folder of attn-opt and attn-compile (default build/bin)")
    t.add_argument("--jobs", type=int, default=2, help="cases run at once (default 2)")
    t.add_argument("--only", default="", help="only cases whose name contains this")
    t.add_argument("--python-normalise", action="store_true",
                   help="normalise in Python even when the output re-parses (testing)")
    c = sub.add_parser("compare", help="compare two snapshots")
    c.add_argument("dir_a")
    c.add_argument("dir_b")
    c.add_argument("--exact", action="store_true",
                   help="compare the texts as taken (constant order included)")
    args = parser.parse_args()
    return take(args) if args.mode == "take" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
