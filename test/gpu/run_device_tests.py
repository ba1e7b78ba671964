#!/usr/bin/env python3
"""Runs the GPU execution tests built by ``build_device_tests.py``, on the GPU machine.

    python3 test/gpu/run_device_tests.py build/device-tests [--only SUBSTRING] [--simulate]

For every case of ``<dir>/manifest.json``: random inputs from the case's seed (never zero),
the reference in PyTorch float64 on the GPU (``torch_reference.py``; on every layer and flash
attention case also checked against the numpy reference ``python/attn/reference.py``), output
buffers filled with NaN, one call of ``_mlir_ciface_<function>`` of ``<module>.so`` through
ctypes with descriptors of CUDA device pointers (``docs/ABI.md``), then the checks:

* every output: ``max|out - ref| / max|ref|`` within 8e-3 (bf16) or 1e-3 (f16), whole layers
  9e-3 or 1e-3 (about twice the worst measured on an H200), no NaN;
  flash-attention rows that see no key are exactly zero;
* the KV cache: slots the step writes equal the reference within 2 ulps of the storage type
  per (slot, head) vector (the store op alone: bit-exact); every other element is bit-for-bit
  unchanged; the other arguments are not modified.

Each case runs in a worker process: a CUDA error in the library aborts or poisons its CUDA
context, so after a crash or an exception the remaining cases continue in a fresh worker, and
a case that makes no progress for ``--stall`` seconds is killed. A short table comes last;
the exit status is 1 if any case failed. With ``$OUT`` set, ``device-tests.json`` (every
check) and ``device-tests-table.txt`` are written there.

``--simulate`` writes the reference into the outputs instead of calling the libraries: it tests
this harness (inputs, references, checks) where the compiler is not built yet.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [os.path.join(REPO, "python"), HERE]

from attn import ir  # noqa: E402
from attn import reference as ref  # noqa: E402
from attn import runtime as rt  # noqa: E402

import device_abi  # noqa: E402

# Output tolerances, relative to max |expected|: about twice the worst error measured on an H200
# (benchmarks/results/gpu-h200-2026-12-03*/device-tests.json, 76 cases). A correctly rounded
# result is within half an ulp, 2^-8 = 3.9e-3 (bf16) and 2^-11 = 4.9e-4 (f16) of max |expected|.
# * OUT_TOL, one op (projections, rms_norm, rope, linear, paged / flash attention): rounded once
#   to the storage type; measured worst bf16 3.7e-3 (rope), f16 4.6e-4 (rope).
# * LAYER_TOL, whole layers (layer_* and primitive_* cases): q, k, v and the attention output are
#   rounded between the steps, the reference rounds only the inputs; measured worst bf16 4.5e-3,
#   f16 4.5e-4. (The CPU tests measure more, 6.9e-3 / 6.6e-4, on configurations not run here;
#   python/tests/cpu_exec_support.py.)
OUT_TOL = {"bf16": 8e-3, "f16": 1e-3}
LAYER_TOL = {"bf16": 9e-3, "f16": 1e-3}
CACHE_TOL = {"bf16": 2.0**-6 + 1e-6, "f16": 2.0**-9 + 1e-7}
XCHECK_TOL = 1e-9  # torch vs numpy reference, both float64


# ---------------------------------------------------------------------------------------------
# Worker: tensors, calls and checks (imports torch)


def edited(t, index, value):
    """A copy of tensor ``t`` with ``t[index] = value``."""
    t = t.clone()
    t[index] = value
    return t


class Worker:
    """Runs cases in this process: holds the loaded libraries and the torch module."""

    def __init__(self, outdir, manifest, simulate):
        import torch
        import torch_reference

        self.torch, self.tr = torch, torch_reference
        self.dev = torch.device("cuda")
        self.outdir, self.manifest, self.simulate = outdir, manifest, simulate
        self.dtypes = {"bf16": torch.bfloat16, "f16": torch.float16}
        self.libraries = {}

    # Tensors ----------------------------------------------------------------------------------

    def upload(self, array):
        """Device tensor of an ABI numpy array (uint16 bf16 bits become torch.bfloat16)."""
        if array.dtype == np.uint16:
            return self.torch.from_numpy(array.view(np.int16)).to(self.dev).view(
                self.torch.bfloat16)
        return self.torch.from_numpy(np.ascontiguousarray(array)).to(self.dev)

    def tensor(self, values, dtype):
        """Device tensor of ``values`` in the ABI type ``dtype``."""
        return self.upload(rt.to_abi(values, dtype))

    def nan_filled(self, shape, dtype):
        return self.torch.full(shape, math.nan, dtype=self.dtypes[dtype], device=self.dev)

    def bits(self, t):
        return t.view({1: self.torch.uint8, 2: self.torch.int16, 4: self.torch.int32}[t.element_size()])

    # Calls ------------------------------------------------------------------------------------

    def function(self, case):
        module = self.manifest["modules"][case["module"]]
        if not module["ok"]:
            raise RuntimeError(f"module {case['module']} was not built: "
                               f"{(module['error'].splitlines() or ['?'])[-1]}")
        lib = self.libraries.get(case["module"])
        if lib is None:
            lib = self.libraries[case["module"]] = device_abi.load(
                os.path.join(self.outdir, module["so"]))
        return device_abi.DeviceFunction(lib, case["function"])

    def runtime(self, case):
        """libattn_cuda_runtime.so, as loaded with the case's library."""
        module = self.manifest["modules"][case["module"]]
        return device_abi.runtime(os.path.join(self.outdir, module["so"]))

    def call(self, case, inputs, outputs, simulated):
        """Calls the case's function (synchronous); ``simulated`` is [(buffer, reference)] that
        ``--simulate`` writes instead."""
        self.torch.cuda.synchronize()
        if self.simulate:
            for buffer, want in simulated:
                buffer.copy_(want.to(buffer.dtype))
        else:
            self.function(case)(inputs, outputs)
        self.torch.cuda.synchronize()

    # Cases ------------------------------------------------------------------------------------

    def run(self, case):
        check = Checks(self.torch)
        getattr(self, f"run_{case['kind']}")(case, ir.LayerConfig(**case["config"]),
                                             np.random.default_rng(case["seed"]), check)
        return check

    def nonzero(self, rng, shape, dtype):
        """Random values in +-[0.5, 1.5): never zero, so unwritten or misread data shows."""
        return self.tensor(rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape), dtype)

    def index(self, values):
        return self.tensor(values, "i32")

    def paged_cache(self, rng, cfg, cached, new, spare=3):
        """(blocks, row_offsets, cache_lengths, lookup_table) of a random paged cache."""
        pages = int(np.sum(-(-(np.array(cached) + new) // cfg.page_size))) + spare
        cache = ref.random_paged_cache(rng, pages, cfg.num_layers, cfg.page_size,
                                       cfg.num_kv_heads, cfg.head_dim, cached, new, cfg.dtype)
        return (self.tensor(cache["kv_blocks"], cfg.dtype),
                *(self.index(cache[n]) for n in ("row_offsets", "cache_lengths", "lookup_table")))

    def offset_view(self, t, elements):
        """A copy of ``t`` that starts ``elements`` into a buffer of its own."""
        view = self.torch.empty(t.numel() + elements, dtype=t.dtype, device=t.device)
        view = view[elements:].view(t.shape)
        view.copy_(t)
        return view

    def check_unchanged(self, check, tensors, before):
        for name, t in tensors.items():
            if not self.torch.equal(self.bits(t), self.bits(before[name])):
                check.fail(f"argument {name} was modified")

    def check_cache(self, check, after, before, want, row_offsets, cache_lengths, lookup,
                    layer, tol):
        """Written slots within ``tol`` per (slot, head) vector; all else bit-for-bit."""
        page_ids, slots = self.tr.page_slots(row_offsets, cache_lengths, lookup, after.shape[3])
        mask = self.torch.zeros(after.shape[:4], dtype=self.torch.bool, device=self.dev)
        mask[page_ids, :, layer, slots] = True
        changed = (self.bits(after) != self.bits(before)) & ~mask[..., None, None]
        if changed.any():
            at = self.torch.nonzero(changed)[0].tolist()
            check.fail(f"cache: {int(changed.sum())} elements outside the written slots "
                       f"changed, first at [P,2,L,page,Hkv,D] = {at}")
        got, exp = after.double()[mask], want[mask]
        scale = exp.abs().amax(-1, keepdim=True)
        err = ((got - exp).abs() / self.torch.where(scale > 0, scale, 1.0)).amax() \
            if got.numel() else self.torch.tensor(0.0)
        bad = not bool(self.torch.isfinite(got).all())
        check.add("cache", math.inf if bad else float(err), tol)

    def run_layer(self, case, cfg, rng, check):
        host = ir.random_layer_inputs(rng, cfg, case["cached"], case["new"])
        args = {n: self.upload(a) for n, a in host.items()}
        np_out, np_blocks = ir.reference_layer(cfg, host)
        if cfg.quant:
            # Quantised weights: the numpy reference decodes them (torch_reference does not).
            want_out, want_blocks = (self.torch.from_numpy(np.asarray(a, dtype=np.float64))
                                     .to(self.dev) for a in (np_out, np_blocks))
        else:
            want_out, want_blocks = self.tr.layer(
                cfg, {n: t.double() if t.is_floating_point() else t for n, t in args.items()})
            check.close("reference: torch vs numpy, out", want_out, np_out, XCHECK_TOL)
            check.close("reference: torch vs numpy, cache",
                        ref.cast_like(want_blocks.cpu().numpy(), cfg.dtype), np_blocks,
                        XCHECK_TOL)
        before = {n: t.clone() for n, t in args.items()}
        out = self.nan_filled((sum(case["new"]), cfg.hidden), cfg.dtype)
        self.call(case, list(args.values()), [out],
                  [(out, want_out), (args["blocks"], want_blocks)])
        if cfg.quant and cfg.quant_of("wo")["kind"] == "float8":
            # o_proj rounds its input to E4M3: the slack of that, as the CPU tests
            # (python/tests/test_cpu_exec_quant.py).
            check.close("out", out, want_out, LAYER_TOL[cfg.dtype],
                        slack=ir.float8_o_proj_slack(cfg, host, LAYER_TOL[cfg.dtype]))
        else:
            check.close("out", out, want_out, LAYER_TOL[cfg.dtype])
        self.check_cache(check, args["blocks"], before["blocks"], want_blocks,
                         args["row_offsets"], args["cache_lengths"], args["lookup_table"],
                         cfg.layer_idx, CACHE_TOL[cfg.dtype])
        self.check_unchanged(check, {n: t for n, t in args.items() if n != "blocks"}, before)

    def run_paged_attention(self, case, cfg, rng, check):
        blocks, offsets, lengths, lookup = self.paged_cache(rng, cfg, case["cached"],
                                                            case["new"])
        q = self.nonzero(rng, (sum(case["new"]), cfg.num_heads, cfg.head_dim), cfg.dtype)
        want = self.tr.paged_attention(q.double(), blocks.double(), lengths, lookup, offsets,
                                       cfg.layer_idx, cfg.mask, cfg.scale)
        args = {"q": q, "row_offsets": offsets, "blocks": blocks, "cache_lengths": lengths,
                "lookup_table": lookup}
        before = {n: t.clone() for n, t in args.items()}
        out = self.nan_filled(q.shape, cfg.dtype)
        self.call(case, list(args.values()), [out], [(out, want)])
        check.close("out", out, want, OUT_TOL[cfg.dtype])
        self.check_unchanged(check, args, before)

    def run_flash_attention(self, case, cfg, rng, check):
        qo = np.concatenate([[0], np.cumsum(case["q_lens"])])
        ko = np.concatenate([[0], np.cumsum(case["kv_lens"])])
        q = self.nonzero(rng, (qo[-1], cfg.num_heads, cfg.head_dim), cfg.dtype)
        k, v = (self.nonzero(rng, (ko[-1], cfg.num_kv_heads, cfg.head_dim), cfg.dtype)
                for _ in range(2))
        q_off, kv_off = self.index(qo), self.index(ko)
        want = self.tr.flash_attention(q.double(), k.double(), v.double(), q_off, kv_off,
                                       cfg.mask, cfg.scale)
        np_want = ref.flash_attention(*(t.double().cpu().numpy() for t in (q, k, v)), qo, ko,
                                      cfg.mask, cfg.scale)
        check.close("reference: torch vs numpy", want, np_want, XCHECK_TOL)
        args = {"q": q, "k": k, "v": v, "q_row_offsets": q_off, "kv_row_offsets": kv_off}
        before = {n: t.clone() for n, t in args.items()}
        out = self.nan_filled(q.shape, cfg.dtype)
        self.call(case, list(args.values()), [out], [(out, want)])
        check.close("out", out, want, OUT_TOL[cfg.dtype])
        blind = (want == 0).flatten(1).all(1)  # rows that see no key: exactly zero
        if not bool((out[blind] == 0).all()):
            check.fail("rows without a visible key are not zero")
        self.check_unchanged(check, args, before)

    def run_rope(self, case, cfg, rng, check):
        offsets = self.index(np.concatenate([[0], np.cumsum(case["new"])]))
        lengths = self.index(case["cached"])
        x = self.nonzero(rng, (sum(case["new"]), cfg.num_heads, cfg.head_dim), cfg.dtype)
        want = self.tr.apply_rope(x.double(), offsets, lengths, cfg.rope)
        out = self.nan_filled(x.shape, cfg.dtype)
        self.call(case, [x, offsets, lengths], [out], [(out, want)])
        check.close("out", out, want, OUT_TOL[cfg.dtype])

    def run_rms_norm(self, case, cfg, rng, check):
        shape = (case["tokens"], case["heads"], cfg.head_dim)
        # Rows of very different magnitudes (the norm removes them), one tiny (eps matters).
        raw = rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape) \
            * np.exp(rng.uniform(-4, 3, shape[:2] + (1,)))
        raw[3] *= 1e-3
        x = self.tensor(raw, cfg.dtype)
        gamma = self.tensor(rng.uniform(0.5, 1.5, cfg.head_dim), cfg.dtype)
        want = self.tr.rms_norm(x.double(), gamma.double(), cfg.rms_norm_eps)
        out = self.nan_filled(x.shape, cfg.dtype)
        self.call(case, [x, gamma], [out], [(out, want)])
        check.close("out", out, want, OUT_TOL[cfg.dtype])

    def run_kv_cache_store(self, case, cfg, rng, check):
        blocks, offsets, lengths, lookup = self.paged_cache(rng, cfg, case["cached"],
                                                            case["new"])
        shape = (sum(case["new"]), cfg.num_kv_heads, cfg.head_dim)
        k, v = self.nonzero(rng, shape, cfg.dtype), self.nonzero(rng, shape, cfg.dtype)
        want = self.tr.kv_cache_store(blocks.double(), k.double(), v.double(), offsets,
                                      lengths, lookup, cfg.layer_idx)
        args = {"k": k, "v": v, "row_offsets": offsets, "blocks": blocks,
                "cache_lengths": lengths, "lookup_table": lookup}
        before = {n: t.clone() for n, t in args.items()}
        self.call(case, list(args.values()), [], [(blocks, want)])
        # A copy: bit-exact everywhere (the check below counts the written slots' errors).
        self.check_cache(check, blocks, before["blocks"], want, offsets, lengths, lookup,
                         cfg.layer_idx, 0.0)
        self.check_unchanged(check, {n: t for n, t in args.items() if n != "blocks"}, before)

    def run_rope_store(self, case, cfg, rng, check):
        """q rotated into a new tensor, k rotated and v copied into the cache. With
        ``view_offset``, q, k, v and the rotated q are views that many elements into their
        buffers (not 4-byte aligned at 1: the kernel's pair-by-pair path)."""
        blocks, offsets, lengths, lookup = self.paged_cache(rng, cfg, case["cached"],
                                                            case["new"])
        rows, off = sum(case["new"]), case.get("view_offset", 0)

        def view(t):
            flat = self.torch.empty(t.numel() + off, dtype=t.dtype, device=self.dev)
            flat[off:] = t.flatten()
            return flat[off:].view(t.shape)

        q = view(self.nonzero(rng, (rows, cfg.num_heads, cfg.head_dim), cfg.dtype))
        k, v = (view(self.nonzero(rng, (rows, cfg.num_kv_heads, cfg.head_dim), cfg.dtype))
                for _ in range(2))
        want_q = self.tr.apply_rope(q.double(), offsets, lengths, cfg.rope)
        want_k = self.tr.apply_rope(k.double(), offsets, lengths, cfg.rope)
        want_blocks = self.tr.kv_cache_store(blocks.double(), want_k, v.double(), offsets,
                                             lengths, lookup, cfg.layer_idx)
        args = {"q": q, "k": k, "v": v, "row_offsets": offsets, "blocks": blocks,
                "cache_lengths": lengths, "lookup_table": lookup}
        before = {n: t.clone() for n, t in args.items()}
        out = view(self.nan_filled(q.shape, cfg.dtype))
        self.call(case, list(args.values()), [out], [(out, want_q), (blocks, want_blocks)])
        check.close("q", out, want_q, OUT_TOL[cfg.dtype])
        self.check_cache(check, blocks, before["blocks"], want_blocks, offsets, lengths, lookup,
                         cfg.layer_idx, CACHE_TOL[cfg.dtype])
        self.check_unchanged(check, {n: t for n, t in args.items() if n != "blocks"}, before)

    def run_runtime_layer(self, case, cfg, rng, check):
        """One compiled function for every layer: each layer in turn, then layers outside the
        cache (status 1) and a lookup table of the wrong batch size (status 2), which must leave
        everything untouched."""
        args = self.store_attend_arguments(case, cfg, rng)
        q, lookup = args["q"], args["lookup_table"]
        for layer in range(cfg.num_layers):
            self.check_store_attend(case, cfg, args, layer, check)
        before = {n: t.clone() for n, t in args.items()}
        for layer in (-1, cfg.num_layers):
            self.expect_refused(case, check, f"layer {layer}", [np.int32(layer), *args.values()],
                                1, self.nan_filled(q.shape, cfg.dtype), args, before)
        # A lookup table with a row fewer than sequences: status 2, nothing written.
        short = dict(args, lookup_table=lookup[:-1].contiguous())
        self.expect_refused(case, check, "short lookup table", [np.int32(0), *short.values()], 2,
                            self.nan_filled(q.shape, cfg.dtype), args, before)
        # q one element into its buffer, off the 16-byte boundary that attention's loads need:
        # status 9, nothing written.
        moved = dict(args, q=self.offset_view(q, 1))
        self.expect_refused(case, check, "q off a 16-byte boundary", [np.int32(0), *moved.values()],
                            9, self.nan_filled(q.shape, cfg.dtype), args, before)

    def store_attend_arguments(self, case, cfg, rng):
        """The store-and-attend function's tensors: q, k, v of the case's new tokens and a
        paged cache holding its cached ones."""
        blocks, offsets, lengths, lookup = self.paged_cache(rng, cfg, case["cached"],
                                                            case["new"])
        shape = (sum(case["new"]), cfg.num_kv_heads, cfg.head_dim)
        q = self.nonzero(rng, (shape[0], cfg.num_heads, cfg.head_dim), cfg.dtype)
        k, v = self.nonzero(rng, shape, cfg.dtype), self.nonzero(rng, shape, cfg.dtype)
        return {"q": q, "k": k, "v": v, "row_offsets": offsets, "blocks": blocks,
                "cache_lengths": lengths, "lookup_table": lookup}

    def check_store_attend(self, case, cfg, args, layer, check):
        """Stores k, v into cache layer ``layer`` and attends over it; checks the output and
        the cache (only the new tokens' slots change) against the reference."""
        a = args
        blocks, before = a["blocks"], a["blocks"].clone()
        want_blocks = self.tr.kv_cache_store(blocks.double(), a["k"].double(), a["v"].double(),
                                             a["row_offsets"], a["cache_lengths"],
                                             a["lookup_table"], layer)
        want = self.tr.paged_attention(a["q"].double(), want_blocks, a["cache_lengths"],
                                       a["lookup_table"], a["row_offsets"], layer, cfg.mask,
                                       cfg.scale)
        out = self.nan_filled(a["q"].shape, cfg.dtype)
        self.call(case, [np.int32(layer), *args.values()], [out],
                  [(out, want), (blocks, want_blocks)])
        check.close(f"layer {layer}: out", out, want, OUT_TOL[cfg.dtype])
        self.check_cache(check, blocks, before, want_blocks, a["row_offsets"],
                         a["cache_lengths"], a["lookup_table"], layer, 0.0)

    def expect_refused(self, case, check, what, arguments, status, out, inputs, before):
        """Calls ``case`` on bad ``arguments``: it must return ``status`` and write neither
        ``out`` (NaN-filled) nor ``inputs`` (``before``: their copies)."""
        try:
            self.call(case, arguments, [out], [])
            if not self.simulate:
                check.fail(f"{what}: no error status")
        except rt.EntryError as e:
            if e.status != status:
                check.fail(f"{what}: status {e.status}, expected {status}")
        if not bool(out.isnan().all()):
            check.fail(f"{what}: the output was written")
        self.check_unchanged(check, inputs, before)

    def expect_refused_on_device(self, case, check, what, arguments, status, out, inputs,
                                 output_unspecified=False):
        """Calls ``case`` on bad index values, which the device finds: the call returns 0,
        attnCudaTakeStatus then returns ``status``, and neither ``out`` (NaN-filled, unless
        ``output_unspecified``: a layer's projections still run) nor ``inputs`` changed (bit
        for bit)."""
        before = {n: t.clone() for n, t in inputs.items()}
        try:
            self.call(case, arguments, [out], [])
        except rt.EntryError as e:
            check.fail(f"{what}: status {e.status} from the host, expected 0")
        if not self.simulate:
            taken = self.runtime(case).attnCudaTakeStatus()
            if taken != status:
                check.fail(f"{what}: attnCudaTakeStatus gave {taken}, expected {status}")
        if not output_unspecified and not bool(out.isnan().all()):
            check.fail(f"{what}: the output was written")
        self.check_unchanged(check, inputs, before)

    def expect_status_cleared(self, case, check, what):
        if not self.simulate and self.runtime(case).attnCudaTakeStatus() != 0:
            check.fail(f"{what}: a good call left a non-zero status")

    def run_index_checks(self, case, cfg, rng, check):
        """Statuses 3-6 of the store-and-attend function: each bad index tensor is refused on
        the device with the cache and output untouched, and a good call after it is right once
        the status is taken (before, it does nothing either)."""
        args = self.store_attend_arguments(case, cfg, rng)
        offsets, lengths, lookup = (args[n] for n in ("row_offsets", "cache_lengths",
                                                      "lookup_table"))
        pages = args["blocks"].shape[0]
        first = next(s for s, n in enumerate(case["new"]) if n > 0)  # a sequence with new rows

        bad = {
            "row offsets not starting at 0": (3, "row_offsets", offsets + 1),
            "row offsets decreasing": (3, "row_offsets", edited(offsets, 1, offsets[2] + 1)),
            "row offsets ending before T": (3, "row_offsets", edited(offsets, -1,
                                                                    offsets[-1] - 1)),
            "negative cache length": (4, "cache_lengths", edited(lengths, first, -1)),
            "lookup table too narrow": (5, "lookup_table", lookup[:, :1].contiguous()),
            "page id = P": (6, "lookup_table", edited(lookup, (first, 0), pages)),
            "negative page id": (6, "lookup_table", edited(lookup, (first, 0), -1)),
        }
        for what, (status, name, value) in bad.items():
            arguments = dict(args, **{name: value})
            self.expect_refused_on_device(case, check, what, [np.int32(0), *arguments.values()],
                                          status, self.nan_filled(args["q"].shape, cfg.dtype),
                                          arguments)
            self.check_store_attend(case, cfg, args, 0, check)
            self.expect_status_cleared(case, check, f"after {what}")
        # Sticky until taken: a good call after a refused one does nothing either.
        before = {n: t.clone() for n, t in args.items()}
        out = self.nan_filled(args["q"].shape, cfg.dtype)
        for arguments in (dict(args, row_offsets=offsets + 1), args):
            self.call(case, [np.int32(0), *arguments.values()], [out], [])
        if not self.simulate and self.runtime(case).attnCudaTakeStatus() != 3:
            check.fail("a good call after a refused one: the status is not the refused one's")
        if not bool(out.isnan().all()):
            check.fail("a good call before the status was taken wrote the output")
        self.check_unchanged(check, args, before)

    def run_layer_index_checks(self, case, cfg, rng, check):
        """Statuses 3-7 of a whole layer, found by the extra block of its q/k/v projection's
        launch: each bad index tensor leaves the cache and every input bit-identical (the
        output is unspecified, docs/ABI.md) and is taken once; then a good call is right."""
        host = ir.random_layer_inputs(rng, cfg, case["cached"], case["new"])
        args = {n: self.upload(a) for n, a in host.items()}
        offsets, lengths, lookup = (args[n] for n in ("row_offsets", "cache_lengths",
                                                      "lookup_table"))
        first = next(s for s, n in enumerate(case["new"]) if n > 0)  # a sequence with new rows
        beyond = cfg.max_seq_len - case["new"][first] + 1

        bad = {
            "row offsets ending before T": (3, dict(row_offsets=edited(offsets, -1,
                                                                      offsets[-1] - 1))),
            "negative cache length": (4, dict(cache_lengths=edited(lengths, first, -1))),
            "lookup table too narrow": (5, dict(lookup_table=lookup[:, :1].contiguous())),
            "page id = P": (6, dict(lookup_table=edited(lookup, (first, 0),
                                                        args["blocks"].shape[0]))),
            # Rows of valid page ids (each sequence's first) wide enough for one page more
            # than max_seq_len holds, so that only the RoPE table is too short.
            "position beyond the RoPE table": (7, dict(
                cache_lengths=edited(lengths, first, beyond),
                lookup_table=lookup[:, :1].expand(
                    -1, -(-cfg.max_seq_len // cfg.page_size) + 1).contiguous())),
        }
        out = self.nan_filled((sum(case["new"]), cfg.hidden), cfg.dtype)
        for what, (status, change) in bad.items():
            arguments = dict(args, **change)
            self.expect_refused_on_device(case, check, what, list(arguments.values()), status,
                                          out, arguments, output_unspecified=True)
            self.expect_status_cleared(case, check, f"after {what}")
        self.run_layer(case, cfg, rng, check)

    def run_rope_index_checks(self, case, cfg, rng, check):
        """Statuses 3, 4 and 7 of the rope function (a 512-row table): refused on the device
        with the output untouched, then a good call is right."""
        offsets = self.index(np.concatenate([[0], np.cumsum(case["new"])]))
        lengths = self.index(case["cached"])
        x = self.nonzero(rng, (sum(case["new"]), cfg.num_heads, cfg.head_dim), cfg.dtype)
        last = len(case["new"]) - 1  # has new rows
        beyond = cfg.max_seq_len - case["new"][last] + 1
        bad = {
            "row offsets ending after T": (3, dict(offsets=offsets + (
                self.torch.arange(len(offsets), device=self.dev) == len(offsets) - 1).int())),
            "negative cache length": (4, dict(lengths=lengths - (lengths > 0).int() * 1000)),
            "position beyond the RoPE table": (7, dict(lengths=self.index(
                [*case["cached"][:last], beyond]))),
        }
        for what, (status, change) in bad.items():
            a = dict(dict(x=x, offsets=offsets, lengths=lengths), **change)
            self.expect_refused_on_device(case, check, what, list(a.values()), status,
                                          self.nan_filled(x.shape, cfg.dtype), a)
            want = self.tr.apply_rope(x.double(), offsets, lengths, cfg.rope)
            out = self.nan_filled(x.shape, cfg.dtype)
            self.call(case, [x, offsets, lengths], [out], [(out, want)])
            check.close(f"after {what}: out", out, want, OUT_TOL[cfg.dtype])
            self.expect_status_cleared(case, check, f"after {what}")

    def run_abi_checks(self, case, cfg, rng, check):
        """The run-time-layer function built with --abi-checks: good inputs as without it, then
        a cache of half the page size and keys of another head dim, which must give status 8
        and leave everything untouched."""
        args = self.store_attend_arguments(case, cfg, rng)
        self.check_store_attend(case, cfg, args, 0, check)
        blocks, k, q = args["blocks"], args["k"], args["q"]
        shape = k.shape
        p, two, layers, page, heads, dim = blocks.shape
        wrong = {"half pages": dict(args, blocks=blocks.new_zeros(
                     (2 * p, two, layers, page // 2, heads, dim))),
                 "head dim": dict(args, k=k.new_zeros((shape[0], heads, dim // 2)))}
        for what, bad in wrong.items():
            snapshot = {n: t.clone() for n, t in bad.items()}
            self.expect_refused(case, check, what, [np.int32(0), *bad.values()], 8,
                                self.nan_filled(q.shape, cfg.dtype), bad, snapshot)

    def run_graph_capture(self, case, cfg, rng, check):
        """A call captured once into a CUDA graph (on the capturing stream, set with
        attnCudaSetStream), then replayed on new inputs copied into the captured buffers: each
        replay must match the reference of its inputs."""
        blocks, offsets, lengths, lookup = self.paged_cache(rng, cfg, case["cached"],
                                                            case["new"])
        tokens = sum(case["new"])
        q = self.nonzero(rng, (tokens, cfg.num_heads, cfg.head_dim), cfg.dtype)
        k, v = (self.nonzero(rng, (tokens, cfg.num_kv_heads, cfg.head_dim), cfg.dtype)
                for _ in range(2))
        out = self.nan_filled(q.shape, cfg.dtype)
        layer = np.int32(case["layer"])
        call = self.function(case).bind([layer, q, k, v, offsets, blocks, lengths, lookup], [out])
        graph = None
        if not self.simulate:
            runtime = self.runtime(case)
            torch = self.torch
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm up outside the capture
                runtime.attnCudaSetStream(side.cuda_stream)
                call()
            runtime.attnCudaSetStream(None)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph):
                    runtime.attnCudaSetStream(torch.cuda.current_stream().cuda_stream)
                    call()
            finally:
                runtime.attnCudaSetStream(None)
        for replay in range(2):
            fresh = self.paged_cache(rng, cfg, case["cached"], case["new"])[0]
            blocks.copy_(fresh)
            for t in (q, k, v):
                t.copy_(self.nonzero(rng, t.shape, cfg.dtype))
            out.fill_(math.nan)
            want_blocks = self.tr.kv_cache_store(blocks.double(), k.double(), v.double(),
                                                 offsets, lengths, lookup, int(layer))
            want = self.tr.paged_attention(q.double(), want_blocks, lengths, lookup, offsets,
                                           int(layer), cfg.mask, cfg.scale)
            before = blocks.clone()
            self.torch.cuda.synchronize()
            if graph is None:
                out.copy_(want.to(out.dtype))
                blocks.copy_(want_blocks.to(blocks.dtype))
            else:
                graph.replay()
            self.torch.cuda.synchronize()
            check.close(f"replay {replay}: out", out, want, OUT_TOL[cfg.dtype])
            self.check_cache(check, blocks, before, want_blocks, offsets, lengths, lookup,
                             int(layer), 0.0)

    def quantized_weight(self, rng, cfg, rows, cols):
        """A random quantised W ``[rows, cols]``: its parts as device tensors in argument order
        (``ir.quantized_part_names``) and its ``reference`` weight."""
        parts = ir.random_quantized_weight(rng, cfg.quant, rows, cols)
        return ([self.upload(parts[n]) for n in ir.quantized_part_names(cfg.quant)],
                ir.reference_quantized_weight(cfg.quant, parts))

    def run_quantized_qkv_projection(self, case, cfg, rng, check):
        """q, k, v of separate (or stacked) quantised weights against the numpy reference."""
        shapes, t = cfg.weight_shapes(), case["tokens"]
        x = self.tensor(rng.standard_normal((t, cfg.hidden)), cfg.dtype)
        names = ["wqkv"] if cfg.stacked else ["wq", "wk", "wv"]
        parts, weights = zip(*(self.quantized_weight(rng, cfg, *shapes[n]) for n in names))
        want = ref.qkv_projection(x.double().cpu().numpy(), list(weights), cfg.num_heads,
                                  cfg.num_kv_heads, cfg.head_dim)
        outs = [self.nan_filled((t, h, cfg.head_dim), cfg.dtype)
                for h in (cfg.num_heads, cfg.num_kv_heads, cfg.num_kv_heads)]
        self.call(case, [x, *(p for ps in parts for p in ps)], outs,
                  [(o, self.torch.from_numpy(w).to(self.dev)) for o, w in zip(outs, want)])
        for label, got, exp in zip("qkv", outs, want):
            check.close(label, got, exp, OUT_TOL[cfg.dtype])

    def run_quantized_linear(self, case, cfg, rng, check):
        k, n = case["in_features"], case["out_features"]
        x = self.nonzero(rng, (case["tokens"], k), cfg.dtype)
        parts, weight = self.quantized_weight(rng, cfg, n, k)
        bias = [self.nonzero(rng, (n,), cfg.dtype)] if case.get("bias") else []
        want = ref.linear(x.double().cpu().numpy(), weight,
                          bias[0].double().cpu().numpy() if bias else None)
        out = self.nan_filled((case["tokens"], n), cfg.dtype)
        self.call(case, [x, *parts, *bias], [out],
                  [(out, self.torch.from_numpy(want).to(self.dev))])
        check.close("out", out, want, OUT_TOL[cfg.dtype])

    def run_qkv_projection(self, case, cfg, rng, check):
        shapes, t = cfg.weight_shapes(), case["tokens"]
        names = [n for n in cfg.weight_names() if n not in ("q_norm", "k_norm", "wo")]
        x = self.tensor(rng.standard_normal((t, cfg.hidden)), cfg.dtype)
        args = {n: self.tensor(rng.standard_normal(shapes[n]) / math.sqrt(cfg.hidden)
                               if n.startswith("w") else 0.5 * rng.standard_normal(shapes[n]),
                               cfg.dtype) for n in names}
        w = self.torch.cat([args[n].double() for n in names if n.startswith("w")])
        biases = [args[n].double() for n in names if n.startswith("b")]
        if cfg.clip is not None and float(w.abs().max()) < 2 * cfg.clip:
            raise ValueError("test input: the clip does not matter")
        want = self.tr.qkv_projection(x.double(), w, self.torch.cat(biases) if biases else None,
                                      cfg.clip, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim)
        outs = [self.nan_filled((t, h, cfg.head_dim), cfg.dtype)
                for h in (cfg.num_heads, cfg.num_kv_heads, cfg.num_kv_heads)]
        self.call(case, [x, *args.values()], outs, list(zip(outs, want)))
        for label, got, exp in zip("qkv", outs, want):
            check.close(label, got, exp, OUT_TOL[cfg.dtype])

    def run_linear(self, case, cfg, rng, check):
        k = case.get("in_features") or cfg.q_rows
        n = case.get("out_features") or cfg.hidden
        x = self.nonzero(rng, (case["tokens"], k), cfg.dtype)
        w = self.tensor(rng.standard_normal((n, k)) / math.sqrt(k), cfg.dtype)
        args = [x, w] + ([self.nonzero(rng, (n,), cfg.dtype)] if case.get("bias") else [])
        want = self.tr.linear(*(a.double() for a in args))
        # ``out_offset``: the output is a view that many elements into its buffer.
        off = case.get("out_offset", 0)
        out = self.nan_filled((case["tokens"] * n + off,), cfg.dtype)[off:].view(case["tokens"], n)
        self.call(case, args, [out], [(out, want)])
        check.close("out", out, want, OUT_TOL[cfg.dtype])
        # ``misaligned``: x and then W one element into their buffers, off the 16-byte boundary
        # that the GEMV's loads and the GEMM's TMA need: status 9, nothing written.
        if case.get("misaligned"):
            inputs = {"x": args[0], "w": args[1]}
            before = {name: t.clone() for name, t in inputs.items()}
            for i, name in enumerate(inputs):
                moved = list(args)
                moved[i] = self.offset_view(args[i], 1)
                self.expect_refused(case, check, f"{name} off a 16-byte boundary", moved, 9,
                                    self.nan_filled((case["tokens"], n), cfg.dtype), inputs, before)


class Checks:
    """The checks of one case: (what, max relative error, tolerance) rows and failures."""

    def __init__(self, torch):
        self.torch = torch
        self.rows, self.failures = [], []

    def add(self, what, err, tol):
        self.rows.append((what, err, tol))

    def fail(self, message):
        self.failures.append(message)

    def close(self, what, got, want, tol, slack=None):
        """``max|got - want| / max|want|``; non-finite ``got`` counts as an infinite error. With
        ``slack`` (per element, or broadcast), ``max(|got - want| - slack) / max|want|``: each
        element may be off by ``slack`` more than ``tol * max|want|``."""
        torch = self.torch
        got = torch.as_tensor(np.asarray(got) if not torch.is_tensor(got) else got).double()
        want = torch.as_tensor(np.asarray(want) if not torch.is_tensor(want) else want)
        want = want.double().to(got.device)
        if got.shape != want.shape:
            raise ValueError(f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}")
        if got.numel() == 0:
            return self.add(what, 0.0, tol)
        scale = float(want.abs().max())
        if scale == 0:
            raise ValueError(f"{what}: the expected values are all zero (bad test input)")
        finite = bool(torch.isfinite(got).all())
        err = (got - want).abs()
        if slack is not None:
            what = f"{what} (+slack)"
            err = err - torch.as_tensor(np.asarray(slack), dtype=err.dtype).to(err.device)
        self.add(what, float(err.max()) / scale if finite else math.inf, tol)

    def record(self):
        ok = not self.failures and all(err <= tol for _, err, tol in self.rows)
        worst = max(self.rows, key=lambda r: r[1] / r[2] if r[2] else (0 if r[1] == 0
                                                                       else math.inf))
        notes = self.failures + [f"{w}: {e:.2e} > {t:.1e}" for w, e, t in self.rows if e > t]
        return {"ok": ok, "err": worst[1], "tol": worst[2], "worst": worst[0],
                "checks": [{"what": w, "err": e, "tol": t} for w, e, t in self.rows],
                "notes": notes}


def worker_main(args):
    """Runs ``args.cases`` in order, appending one JSON line per case to ``args.worker``;
    exits with status 3 after a case raised while CUDA is unusable (the parent restarts)."""
    with open(os.path.join(args.dir, "manifest.json")) as f:
        manifest = json.load(f)
    cases = {c["name"]: c for c in manifest["cases"]}
    worker = Worker(args.dir, manifest, args.simulate)
    torch = worker.torch
    with open(args.worker, "a") as log:
        def emit(record):
            log.write(json.dumps(record) + "\n")
            log.flush()

        emit({"device": torch.cuda.get_device_name(), "torch": torch.__version__})
        for name in args.cases.split(","):
            start = time.monotonic()
            try:
                record = worker.run(cases[name]).record()
            except Exception as e:  # one case's failure must not stop the others
                tb = traceback.format_exc().strip().splitlines()
                record = {"ok": False, "err": math.inf, "tol": 0.0, "worst": "",
                          "notes": [f"{type(e).__name__}: {e}"], "traceback": tb[-8:]}
            record.update(case=name, seconds=round(time.monotonic() - start, 2))
            print(f"{name}: {'PASS' if record['ok'] else 'FAIL'} max rel err "
                  f"{record['err']:.2e} (tol {record['tol']:.0e}) {record['seconds']} s"
                  + "".join(f"\n    {n}" for n in record["notes"]), flush=True)
            emit(record)
            if "traceback" in record and not cuda_usable(torch):
                sys.exit(3)


def cuda_usable(torch):
    try:
        torch.ones(1, device="cuda").add_(1)
        torch.cuda.synchronize()
        return True
    except Exception:  # a sticky CUDA error: this context is lost
        return False


# ---------------------------------------------------------------------------------------------
# Parent: workers, results, table


def run_workers(args, names):
    """Runs ``names`` in worker processes; returns (device, {case: record})."""
    results, device, remaining = {}, "?", list(names)
    while remaining:
        with tempfile.TemporaryDirectory() as tmp:
            log, err = os.path.join(tmp, "results.jsonl"), os.path.join(tmp, "stderr")
            cmd = [sys.executable, os.path.abspath(__file__), args.dir, "--worker", log,
                   "--cases", ",".join(remaining)] + (["--simulate"] if args.simulate else [])
            with open(err, "w") as stderr:
                proc = subprocess.Popen(cmd, stderr=stderr)
                lines, last = 0, time.monotonic()
                while proc.poll() is None:
                    time.sleep(0.5)
                    n = len(read_lines(log))
                    if n != lines:
                        lines, last = n, time.monotonic()
                    elif time.monotonic() - last > args.stall:
                        proc.kill()
                        proc.wait()
            records = read_lines(log)
            with open(err) as f:
                stderr_tail = f.read().strip().splitlines()[-10:]
        if stderr_tail:
            print("worker stderr:\n  " + "\n  ".join(stderr_tail), flush=True)
        if not records:  # the worker could not even start: the same for every case
            for name in remaining:
                results[name] = failed(f"worker did not start (exit {proc.returncode})",
                                       stderr_tail)
            break
        device = records[0]["device"]
        for record in records[1:]:
            results[record["case"]] = record
        remaining = [n for n in remaining if n not in results]
        if remaining and proc.returncode != 3:  # died in the middle of remaining[0]
            why = "timed out" if proc.returncode == -9 else f"worker died ({proc.returncode})"
            results[remaining.pop(0)] = failed(why, stderr_tail)
    return device, results


def read_lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.endswith("\n")]


def failed(why, stderr_tail=()):
    return {"ok": False, "err": math.inf, "tol": 0.0, "worst": "",
            "notes": [why] + list(stderr_tail[-3:])}


def table(device, cases, results):
    """The short summary: one line per case, then the count."""
    lines = [f"GPU execution tests on {device}",
             f"{'case':58} {'worst check':>12} {'max rel err':>11} {'tol':>8}  result",
             "-" * 100]
    for case in cases:
        r = results[case["name"]]
        note = f"  {r['notes'][0][:70]}" if r["notes"] and not r["ok"] else ""
        worst = r["worst"].replace("reference: ", "ref ")[:12]
        lines.append(f"{case['name']:58} {worst:>12} {r['err']:11.2e} {r['tol']:8.1e}  "
                     f"{'PASS' if r['ok'] else 'FAIL'}{note}")
    passed = sum(results[c["name"]]["ok"] for c in cases)
    lines.append(f"{passed}/{len(cases)} passed on {device}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", help="the build folder (manifest.json, *.so)")
    parser.add_argument("--only", default="", help="only cases whose name contains this")
    parser.add_argument("--simulate", action="store_true",
                        help="write the reference instead of calling the libraries")
    parser.add_argument("--stall", type=float, default=300.0,
                        help="kill a case after this many seconds (default 300)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--cases", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker_main(args)

    with open(os.path.join(args.dir, "manifest.json")) as f:
        manifest = json.load(f)
    cases = [c for c in manifest["cases"] if args.only in c["name"]]
    results = {}
    for c in cases:  # unbuilt modules: no need to start a worker for them
        module = manifest["modules"][c["module"]]
        if not module["ok"] and not args.simulate:
            results[c["name"]] = failed(f"not built: "
                                        f"{(module['error'].splitlines() or ['?'])[-1]}")
    device, ran = run_workers(args, [c["name"] for c in cases if c["name"] not in results])
    results.update(ran)
    summary = table(device, cases, results)
    out = os.environ.get("OUT")
    if out:
        with open(os.path.join(out, "device-tests.json"), "w") as f:
            json.dump({"device": device, "simulate": args.simulate, "results": results}, f,
                      indent=1)
        with open(os.path.join(out, "device-tests-table.txt"), "w") as f:
            f.write(summary + "\n")
    print(summary)
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
