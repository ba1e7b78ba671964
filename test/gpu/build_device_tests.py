#!/usr/bin/python3
"""Builds the GPU execution tests: compiles the test modules with ``attn-compile --target=cuda``
and writes the manifest that ``run_device_tests.py`` runs on the GPU machine.

The device machine has no MLIR, so everything is compiled here; its folder (``<outdir>``,
default ``build/device-tests``) holds one ``<module>.so`` (+ its ``.mlir``) per group of cases,
``libattn_cuda_runtime.so`` (the libraries find it beside themselves), and ``manifest.json``:
every case's module, function, kind, layer configuration (``ir.LayerConfig`` fields), seed and
batch shapes, plus each module's build status, so that a module that fails to compile is
reported by the run instead of silently missing.

Coverage mirrors the CPU execution tests (``python/tests/test_cpu_exec*.py``), for the GPU
dtypes bf16 and f16: the whole layer (prefill, decode, a mixed ragged batch with an empty
sequence, cache lengths crossing pages of 16 and 128; MHA and GQA; head dims 64, 128 and 256; every
RoPE scaling, interleaved or not; qk-norm, bias, clip, stacked or separate weights; causal,
none and sliding-window masks; custom scale; a decode step over a 3000-token cache), and each
op alone (flash attention over explicit ragged K/V, paged flash attention with long decode
caches for split-K, rope, rms_norm, kv_cache_store, qkv_projection, linear; the projections
at every row count M where the kernel choice changes, N not a multiple of a tile), and bad
index values (statuses 3-7, found by the validation kernel or, in layers, by an extra block of
the q/k/v projection: nothing written, the status read with ``attnCudaTakeStatus``, then a good
call). Layers run the
default (fused) pipeline; ``*_nofuse`` cases are compiled with ``--no-fuse`` (modules
``*_unfused``), ``primitive_*`` cases are the layer written as separate ops (the fusion passes'
input, ``ir.primitive_layer_function``), ``*-mma-sync`` cases are compiled for sm_90 (modules
``*_mma_sync``: no wgmma, the mma.sync prefill), ``*-streaming`` cases are compiled with
``--gpu-gptq-gemv=streaming`` (modules ``*_streaming``: GPTQ's streaming GEMV). Cases that can
share a module do (one module per kind of function and dtype) to keep compile time and the
carried size small.

Usage (Debian's python3; attn-compile from build/bin or $ATTN_COMPILE):
    /usr/bin/python3 test/gpu/build_device_tests.py [outdir] [--jobs 2] [--only SUBSTRING]
"""

import argparse
import concurrent.futures
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
import zlib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "python"))

from attn import ir  # noqa: E402
from attn import runtime as rt  # noqa: E402

RUNTIME_LIB = os.path.join(REPO, "build", "lib", "libattn_cuda_runtime.so")


# ---------------------------------------------------------------------------------------------
# Configurations


def scaling(kind, head_dim, orig=48):
    """The CPU tests' scaling (``ir.example_scaling``) with a 4096-entry LongRoPE table; ``orig``
    is chosen per case so that positions fall on both sides of original_max_position."""
    return ir.example_scaling(kind, head_dim, orig, max_position=4096)


def rope(kind=None, interleaved=False, head_dim=64, orig=48):
    theta = 500000.0 if kind == "llama3" else 10000.0
    return {"theta": theta, "interleaved": interleaved,
            "scaling": scaling(kind, head_dim, orig)}


def config(dtype, heads, head_dim, page=16, **kw):
    """A layer configuration; hidden defaults to H * D (a model's usual square o_proj)."""
    kw.setdefault("hidden", heads[0] * head_dim)
    kw.setdefault("rope", rope(head_dim=head_dim))
    kw.setdefault("max_seq_len", 512)
    return ir.LayerConfig(num_heads=heads[0], num_kv_heads=heads[1], head_dim=head_dim,
                          dtype=dtype, page_size=page, num_layers=3, layer_idx=1, **kw)


# (cache lengths, new tokens) per sequence, by page size: prefill longer than a GPU query tile;
# decode at position 0, the last slot of a page, the first of a new one; mixed with an empty
# sequence and new tokens crossing pages. Positions stay below max_seq_len (512).
SCENARIOS = {
    16: {
        "prefill": ([0, 0, 0], [200, 1, 77]),
        "decode": ([100, 37, 15, 0, 48, 31], [1, 1, 1, 1, 1, 1]),
        "mixed": ([40, 5, 0, 33, 16, 0], [13, 0, 140, 1, 16, 2]),
        # Long caches: decode reads 3000 keys (split over the key axis).
        "decode-long": ([2999, 1700], [1, 1]),
        # Speculative decoding: 2-8 query rows per sequence on a cache.
        "spec-decode": ([100, 37, 15, 48], [2, 4, 8, 3]),
    },
    128: {
        "prefill": ([0, 0], [300, 33]),
        "decode": ([300, 129, 127, 0], [1, 1, 1, 1]),
        "mixed": ([120, 5, 0, 250, 128], [20, 0, 140, 1, 3]),
        "decode-long": ([2999, 1700], [1, 1]),
        "spec-decode": ([300, 127, 0, 129], [2, 8, 5, 3]),
    },
    256: {
        "prefill": ([0, 0], [300, 33]),
        "decode": ([300, 255, 256, 0], [1, 1, 1, 1]),
        "mixed": ([250, 5, 0, 256], [20, 0, 140, 3]),
        "decode-long": ([2999, 1700], [1, 1]),
        "spec-decode": ([255, 100, 0], [2, 8, 4]),
    },
}
LONG_SEQ_LEN = 3072  # max_seq_len of configurations that run "decode-long"

# Explicit ragged K/V (flash_attention): per sequence q_len / kv_len. kv > q over several key
# tiles; decode; kv < q (under a mask the first rows see no key -> zeros); no queries; no keys;
# square ones.
FLASH_SCENARIOS = {
    "ragged": ([40, 3, 1, 5, 0, 2, 70, 200], [70, 130, 1, 2, 4, 0, 70, 300]),
    "prefill-1k": ([1024], [1024]),
}

# Positions of the rope op: sequence 1 crosses LongRoPE's original_max_position (48), 3 is empty.
ROPE_SCENARIO = ([0, 45, 100, 7, 100], [150, 5, 1, 0, 2])
STORE_SCENARIO = ([0, 30, 15, 100, 4, 0], [40, 3, 1, 0, 13, 0])


@dataclasses.dataclass
class Case:
    """One test: function ``function`` of module ``module`` run on one batch (``params``)."""

    name: str
    module: str
    function: str
    kind: str
    cfg: ir.LayerConfig
    params: dict

    def manifest(self):
        return {"name": self.name, "module": self.module, "function": self.function,
                "kind": self.kind, "dtype": self.cfg.dtype, "config": dataclasses.asdict(self.cfg),
                "seed": zlib.crc32(self.name.encode()), **self.params}


def layer_cases(fn, cfg, scenarios, fuse=True, form="composite"):
    """Whole-layer cases. Modules named ``*_unfused`` are compiled with ``--no-fuse``;
    ``form="primitive"`` writes the layer as separate projections / norm / rope / store ops
    (``ir.primitive_layer_function``), the input of the fusion passes."""
    module = f"layers_{cfg.dtype}" + ("" if fuse else "_unfused")
    params = {} if form == "composite" else {"form": form}
    return [Case(f"{fn}-{s}", module, fn, "layer", cfg,
                 dict(zip(("cached", "new"), SCENARIOS[cfg.page_size][s]), scenario=s,
                      **params))
            for s in scenarios]


def paged_cases(fn, cfg, scenarios):
    return [Case(f"{fn}-{s}", f"attention_{cfg.dtype}", fn, "paged_attention", cfg,
                 dict(zip(("cached", "new"), SCENARIOS[cfg.page_size][s]), scenario=s))
            for s in scenarios]


def flash_cases(fn, cfg, scenarios):
    return [Case(f"{fn}-{s}", f"attention_{cfg.dtype}", fn, "flash_attention", cfg,
                 dict(zip(("q_lens", "kv_lens"), FLASH_SCENARIOS[s]), scenario=s))
            for s in scenarios]


def op_case(fn, kind, cfg, **params):
    return Case(fn, f"ops_{cfg.dtype}", fn, kind, cfg, params)


# Decode-sized M: the projections' GEMV path (M <= 16), and 17, the GEMM just past it.
GEMV_TOKENS = (1, 5, 16, 17)
# The projection kernels, chosen by the number of rows M at run time: 1 and 7 (decode), 16 (the
# GEMV path's last, kGemvMaxRows), 64 and 65 (either side of issue 12's skinny-GEMM bound, about
# 64 rows), 300 and 512 (the GEMM's mid shape: 3 and 4 row tiles) and 1100 (its 128 x 256 shape,
# 9 row tiles, the last partial).
PROJECTION_TOKENS = (1, 7, 16, 64, 65, 300, 512, 1100)


def token_cases(fn, kind, cfg, tokens=GEMV_TOKENS, **params):
    """One function run with each token count of ``tokens``."""
    return [Case(f"{fn}-t{t}", f"ops_{cfg.dtype}", fn, kind, cfg, dict(tokens=t, **params))
            for t in tokens]


def ops_cfg(dtype, **kw):
    return config(dtype, (4, 2), 64, hidden=256, max_seq_len=256, **kw)


# Quantised weights (ir.encoding_attr): GPTQ int4 in groups of 128, with and without desc_act;
# float8 E4M3 by weight-scale granularity and input scale.
GPTQ = {"kind": "gptq", "group_size": 128}
GPTQ_DESC_ACT = dict(GPTQ, desc_act=True)


def float8(weight_scale, input_scale, upper_bound=None):
    return {"kind": "float8", "weight_scale": weight_scale, "input_scale": input_scale,
            "upper_bound": upper_bound}


# The quantised GEMV serves decode sizes up to its 16-row tile, GPTQ up to 64 rows and
# block-scaled float8 every M (17, 40: two and three 16-row slices); GPTQ above 64 rows takes its
# GEMM (100, 130, 300, 512: 128 x 128), tensor- and row-scaled float8 above 16 the E4M3 wgmma
# GEMM (17, 40: its 64 x 64 tiles, partial; 100: its 128 x 64 tiles, partial; 130, 300, 512: its
# 128 x 128 tiles, 300 with a partial last).
QUANT_TOKENS = (1, 7, 16, 17, 40, 100, 130, 300, 512)
# GPTQ by M: 17 and 64 (the GEMV's 16-row slices, partial and whole), 65 (the GEMM's 128 x 128
# tiles, one partial row tile), 512 and 2048 (many row tiles).
GPTQ_GEMM_TOKENS = (17, 64, 65, 512, 2048)
GPTQ_G32 = dict(GPTQ, group_size=32)
GPTQ_BLOCKS = dict(GPTQ, layout="column_blocks")


def quant_cases(fn, kind, cfg, tokens=QUANT_TOKENS, **params):
    """One quantised projection at each of ``tokens`` (modules ``quant_*``)."""
    return [dataclasses.replace(c, module=f"quant_{cfg.dtype}")
            for c in token_cases(fn, kind, cfg, tokens, **params)]


def quant_layer_cases(fn, cfg, scenarios):
    return [dataclasses.replace(c, module=f"quant_layers_{cfg.dtype}")
            for c in layer_cases(fn, cfg, scenarios)]


WINDOW = {"kind": "sliding_window", "window": 20}
NO_MASK = {"kind": "none"}


def all_cases():
    long_len = {"max_seq_len": LONG_SEQ_LEN}
    cases = [
        # Whole layer.
        *layer_cases("layer_bf16_gqa4_d128_p16_llama3",
                     config("bf16", (8, 2), 128, rope=rope("llama3", False, 128)),
                     ("prefill", "decode", "mixed")),
        *layer_cases("layer_f16_mha_d64_p128", config("f16", (4, 4), 64, page=128),
                     ("prefill", "decode", "mixed")),
        *layer_cases("layer_bf16_gqa2_d64_p16_qknorm_stacked_yarn_inter",
                     config("bf16", (4, 2), 64, qk_norm=True, stacked=True, rms_norm_eps=1e-5,
                            rope=rope("yarn", True, 64)), ("mixed",)),
        *layer_cases("layer_f16_gqa4_d128_p128_bias_clip_longrope",
                     config("f16", (8, 2), 128, page=128, bias=True, clip=0.04,
                            rope=rope("longrope", False, 128, orig=130)), ("mixed",)),
        *layer_cases("layer_bf16_mha_d64_p16_window20_linear_inter",
                     config("bf16", (4, 4), 64, mask=WINDOW, rope=rope("linear", True, 64)),
                     ("mixed",)),
        *layer_cases("layer_f16_gqa2_d64_p16_masknone_inter_scale",
                     config("f16", (4, 2), 64, mask=NO_MASK, scale=0.2,
                            rope=rope(None, True, 64)), ("mixed",)),
        *layer_cases("layer_bf16_gqa4_d128_p128_stacked_bias_clip",
                     config("bf16", (8, 2), 128, page=128, stacked=True, bias=True, clip=0.04,
                            hidden=768), ("mixed",)),
        *layer_cases("layer_f16_gqa4_d128_p16_qknorm_long",
                     config("f16", (8, 2), 128, qk_norm=True, **long_len), ("decode-long",)),
        # Fusion (the layers above run the default, fused pipeline: one q/k/v GEMM launch over
        # the separate weights, attn.rope_store with the qk norm folded in): the same layers
        # unfused (--no-fuse), and layers written as a framework exports them (separate
        # linears, bias adds, weight clamps, norm / rope / store ops), which only the fusion
        # passes turn into ops the GPU lowering takes.
        *layer_cases("layer_bf16_gqa4_d128_p16_llama3_nofuse",
                     config("bf16", (8, 2), 128, rope=rope("llama3", False, 128)),
                     ("prefill", "decode", "mixed"), fuse=False),
        *layer_cases("layer_bf16_gqa2_d64_p16_qknorm_yarn_inter_nofuse",
                     config("bf16", (4, 2), 64, qk_norm=True, rms_norm_eps=1e-5,
                            rope=rope("yarn", True, 64)), ("mixed",), fuse=False),
        *layer_cases("layer_bf16_gqa2_d64_p16_qknorm_yarn_inter_fused",
                     config("bf16", (4, 2), 64, qk_norm=True, rms_norm_eps=1e-5,
                            rope=rope("yarn", True, 64)), ("prefill", "decode", "mixed")),
        *layer_cases("primitive_bf16_gqa4_d128_p16_qknorm_bias_clip",
                     config("bf16", (8, 2), 128, qk_norm=True, bias=True, clip=0.04),
                     ("prefill", "decode", "mixed"), form="primitive"),
        *layer_cases("primitive_f16_gqa2_d64_p128_inter",
                     config("f16", (4, 2), 64, page=128, rope=rope(None, True, 64)),
                     ("prefill", "decode", "mixed"), form="primitive"),
        *layer_cases("primitive_bf16_mha_d64_p16_nofuse",
                     config("bf16", (4, 4), 64), ("mixed",), fuse=False, form="primitive"),
        # Shapes of real models beyond the ones above: head dims 80 and 96 (Phi-3.5: 96; the
        # mma.sync prefill), GQA groups 3 and 7 (Qwen2-7B: 7), several query rows per
        # sequence (speculative decoding), pages of 256.
        *layer_cases("layer_bf16_gqa3_d96_p16", config("bf16", (6, 2), 96),
                     ("prefill", "decode", "mixed", "spec-decode")),
        *layer_cases("layer_f16_gqa7_d128_p256", config("f16", (14, 2), 128, page=256),
                     ("prefill", "decode", "mixed", "spec-decode")),
        *layer_cases("layer_bf16_mha_d80_p128", config("bf16", (4, 4), 80, page=128),
                     ("prefill", "mixed", "spec-decode")),
        # Head dim 256 (Gemma-2 / Gemma-3: GQA group 2, 8 / 4 or 16 / 8 heads, sliding-window
        # layers, Gemma-2 27B's scale 144^-1/2, Gemma-3's qk-norm): prefill on wgmma (m64n256 for P V), decode on mma.sync with Q in shared memory
        # and its tiles in dynamic shared memory, the projections, rope and the cache store at
        # D 256; the attention cases run again below with the mma.sync prefill.
        *layer_cases("layer_bf16_gqa2_d256_p16_window64_scale",
                     config("bf16", (8, 4), 256, mask={"kind": "sliding_window", "window": 64},
                            scale=144 ** -0.5, rope=rope(None, False, 256)),
                     ("prefill", "decode", "mixed")),
        *layer_cases("layer_f16_gqa2_d256_p128_qknorm",
                     config("f16", (8, 4), 256, page=128, qk_norm=True, rms_norm_eps=1e-6,
                            rope=rope(None, False, 256)),
                     ("prefill", "decode", "mixed", "spec-decode")),
        *paged_cases("paged_bf16_gqa2_d256_p16_causal",
                     config("bf16", (16, 8), 256, **long_len), ("mixed", "decode-long")),
        *paged_cases("paged_f16_gqa2_d256_p128_window40",
                     config("f16", (8, 4), 256, page=128,
                            mask={"kind": "sliding_window", "window": 40}, **long_len),
                     ("mixed", "spec-decode", "decode-long")),
        *flash_cases("flash_bf16_gqa2_d256_causal", config("bf16", (8, 4), 256),
                     ("ragged", "prefill-1k")),
        *flash_cases("flash_f16_gqa2_d256_window10",
                     config("f16", (16, 8), 256, mask={"kind": "sliding_window", "window": 10}),
                     ("ragged",)),
        # Paged flash attention.
        *paged_cases("paged_bf16_gqa7_d96_p256", config("bf16", (7, 1), 96, page=256, **long_len),
                     ("spec-decode", "decode-long")),
        *paged_cases("paged_f16_gqa3_d80_p16_window40",
                     config("f16", (6, 2), 80, mask={"kind": "sliding_window", "window": 40}),
                     ("mixed", "spec-decode")),
        *paged_cases("paged_bf16_gqa4_d128_p16_causal",
                     config("bf16", (8, 2), 128, **long_len), ("mixed", "decode-long")),
        *paged_cases("paged_bf16_gqa2_d64_p128_window40",
                     config("bf16", (4, 2), 64, page=128,
                            mask={"kind": "sliding_window", "window": 40}), ("mixed",)),
        *paged_cases("paged_f16_gqa4_d128_p128_none_scale",
                     config("f16", (8, 2), 128, page=128, mask=NO_MASK, scale=0.05, **long_len),
                     ("mixed", "decode-long")),
        *paged_cases("paged_f16_mha_d64_p16_window20", config("f16", (4, 4), 64, mask=WINDOW),
                     ("mixed",)),
        # Flash attention over explicit ragged K/V.
        *flash_cases("flash_bf16_gqa4_d128_causal", config("bf16", (8, 2), 128),
                     ("ragged", "prefill-1k")),
        *flash_cases("flash_bf16_mha_d64_none_scale",
                     config("bf16", (4, 4), 64, mask=NO_MASK, scale=0.1), ("ragged",)),
        *flash_cases("flash_f16_gqa2_d64_window10",
                     config("f16", (4, 2), 64, mask={"kind": "sliding_window", "window": 10}),
                     ("ragged",)),
        *flash_cases("flash_f16_gqa4_d128_causal", config("f16", (8, 2), 128), ("ragged",)),
        *flash_cases("flash_bf16_gqa7_d96_causal", config("bf16", (7, 1), 96), ("ragged",)),
    ]
    # The head-dim-256 attention cases built for sm_90 (modules ``*_mma_sync``): no wgmma, so
    # prefill runs on mma.sync with Q read from shared memory (an sm_90 cubin runs on sm_90a).
    cases += [dataclasses.replace(c, name=f"{c.name}-mma-sync", module=f"{c.module}_mma_sync")
              for c in cases if "_d256_" in c.name and c.module.startswith("attention_")]
    # Each op alone; rope covers every scaling in each pairing over the two dtypes.
    pairings = {"bf16": (False, True, False, True, False), "f16": (True, False, True, False, True)}
    for dtype in ("bf16", "f16"):
        cases += [
            op_case(f"qkv_sep_bias_clip_{dtype}", "qkv_projection",
                    ops_cfg(dtype, bias=True, clip=0.05), tokens=131),
            op_case(f"qkv_stacked_{dtype}", "qkv_projection", ops_cfg(dtype, stacked=True),
                    tokens=131),
            # 96 q rows: not a multiple of the GEMM tile, so one launch per weight.
            op_case(f"qkv_sep_unaligned_bias_{dtype}", "qkv_projection",
                    config(dtype, (3, 1), 32, hidden=128, max_seq_len=256, bias=True),
                    tokens=77),
            op_case(f"rms_norm_{dtype}", "rms_norm", ops_cfg(dtype, rms_norm_eps=1e-5),
                    heads=4 if dtype == "bf16" else 2, tokens=37),
            op_case(f"store_{dtype}", "kv_cache_store", ops_cfg(dtype),
                    cached=STORE_SCENARIO[0], new=STORE_SCENARIO[1]),
            op_case(f"o_proj_{dtype}", "linear", ops_cfg(dtype), tokens=131),
        ]
        d256 = config(dtype, (4, 2), 256, max_seq_len=256, rope=rope(None, dtype == "f16", 256))
        cases += [
            op_case(f"store_d256_{dtype}", "kv_cache_store", d256,
                    cached=STORE_SCENARIO[0], new=STORE_SCENARIO[1]),
            op_case(f"rope_d256_{dtype}", "rope", d256,
                    cached=ROPE_SCENARIO[0], new=ROPE_SCENARIO[1]),
        ]
        # attn.rope_store on the caller's q, k, v (fused from rope + store): its lanes take
        # two pairs a step in 4- or 8-byte runs; views one element in take the pair-by-pair
        # path.
        for inter in (False, True):
            name = f"rope_store_{'inter' if inter else 'half'}_{dtype}"
            rs_cfg = ops_cfg(dtype, rope=rope("llama3", inter, 64))
            cases += [op_case(name, "rope_store", rs_cfg, cached=STORE_SCENARIO[0],
                              new=STORE_SCENARIO[1]),
                      Case(f"{name}-offset1", f"ops_{dtype}", name, "rope_store", rs_cfg,
                           dict(cached=STORE_SCENARIO[0], new=STORE_SCENARIO[1],
                                view_offset=1))]
        for kind, inter in zip((None, "linear", "llama3", "yarn", "longrope"), pairings[dtype]):
            name = f"rope_{kind or 'none'}_{'inter' if inter else 'half'}_{dtype}"
            cases.append(op_case(name, "rope", ops_cfg(dtype, rope=rope(kind, inter, 64)),
                                 cached=ROPE_SCENARIO[0], new=ROPE_SCENARIO[1]))
    cases.append(op_case("linear_bias_odd_bf16", "linear", ops_cfg("bf16"), tokens=77,
                         in_features=200, out_features=72, bias=True))
    # The GEMV path: separate weights with bias and clip, stacked, o_proj, an odd linear, and
    # a K of several loop trips with a tail (2056 = 4 x 512 + 8).
    cases += [
        *token_cases("gemv_qkv_sep_bias_clip_bf16", "qkv_projection",
                     ops_cfg("bf16", bias=True, clip=0.05)),
        *token_cases("gemv_qkv_stacked_f16", "qkv_projection", ops_cfg("f16", stacked=True)),
        *token_cases("gemv_o_proj_bf16", "linear", ops_cfg("bf16")),
        *token_cases("gemv_linear_bias_odd_bf16", "linear", ops_cfg("bf16"), in_features=2056,
                     out_features=72, bias=True),
    ]
    # Every projection kernel by M (PROJECTION_TOKENS): a linear whose N (200) is no multiple of
    # a 64 or 128 column tile, and the q/k/v projection over separate weights in Llama-3-8B's
    # proportions (32 / 8 heads: q 4x the rows of k and of v) at a small size.
    cases += [
        *token_cases("proj_linear_n200_k256_bf16", "linear", ops_cfg("bf16"), PROJECTION_TOKENS,
                     in_features=256, out_features=200),
        *token_cases("proj_qkv_llama_proportions_bf16", "qkv_projection",
                     config("bf16", (8, 2), 32, max_seq_len=256), PROJECTION_TOKENS),
    ]
    # The wgmma GEMM's two epilogues: N (256) a multiple of the 8-column chunk, so the tile leaves
    # through shared memory in 16-byte chunks when the output starts 16-byte aligned, and pair by
    # pair from the accumulators when it does not (an output view one element in).
    linear_n256 = ("proj_linear_n256_k256_bf16", "linear", ops_cfg("bf16"))
    cases += token_cases(*linear_n256, (300, 1100), in_features=256, out_features=256)
    cases += [Case(f"{linear_n256[0]}-t{t}-out-offset1", "ops_bf16", linear_n256[0], "linear",
                   linear_n256[2], dict(tokens=t, in_features=256, out_features=256, out_offset=1))
              for t in (300, 1100)]
    # x or W off a 16-byte boundary: status 9 from the host, on the GEMV and the GEMM paths.
    cases += [Case(f"{linear_n256[0]}-t{t}-misaligned", "ops_bf16", linear_n256[0], "linear",
                   linear_n256[2], dict(tokens=t, in_features=256, out_features=256,
                                        misaligned=True))
              for t in (1, 300)]
    # Quantised projections (GemvGPTQ.cpp, GemvQuantKernel.cpp) against python/attn/reference.py's
    # decoding: a linear with N (200) not a multiple of the GEMVs' 32 / 64 columns and K of two
    # loop trips (2048 for GPTQ) or one (1024); q/k/v over separate weights (one launch; one
    # per weight when each has its own desc_act perm or static input scale) or a stacked one.
    cases += [
        *quant_cases("quant_linear_gptq_k2048_n200_bf16", "quantized_linear",
                     ops_cfg("bf16", quant=GPTQ), in_features=2048, out_features=200),
        *quant_cases("quant_linear_gptq_desc_act_k1024_n200_f16", "quantized_linear",
                     ops_cfg("f16", quant=GPTQ_DESC_ACT), in_features=1024, out_features=200),
        *quant_cases("quant_qkv_gptq_bf16", "quantized_qkv_projection",
                     config("bf16", (8, 2), 64, hidden=512, quant=GPTQ)),
        *quant_cases("quant_qkv_gptq_desc_act_bf16", "quantized_qkv_projection",
                     config("bf16", (8, 2), 64, hidden=512, quant=GPTQ_DESC_ACT)),
        *quant_cases("quant_qkv_gptq_stacked_f16", "quantized_qkv_projection",
                     config("f16", (8, 2), 64, hidden=512, stacked=True, quant=GPTQ)),
        # The GPTQ GEMV's K units of one 32-deep group (one step each), its one and two n8
        # tiles of x rows (8 | 9), and weight boundaries inside its 64-column blocks
        # (q / k / v of 96, 32, 32 rows: each 32-column half copies its own weight).
        *quant_cases("quant_linear_gptq_g32_k512_n136_bf16", "quantized_linear",
                     ops_cfg("bf16", quant=GPTQ_G32), (1, 8, 9), in_features=512,
                     out_features=136),
        *quant_cases("quant_qkv_gptq_q96_bf16", "quantized_qkv_projection",
                     config("bf16", (3, 1), 32, hidden=256, quant=GPTQ), (1, 9)),
        *quant_cases("quant_linear_f8_tensor_static_bf16", "quantized_linear",
                     ops_cfg("bf16", quant=float8("tensor", "static")), in_features=1024,
                     out_features=200),
        *quant_cases("quant_linear_f8_row_dynamic_bias_bf16", "quantized_linear",
                     ops_cfg("bf16", quant=float8("row", "dynamic")), in_features=1024,
                     out_features=200, bias=True),
        *quant_cases("quant_linear_f8_block_dynamic_bound_f16", "quantized_linear",
                     ops_cfg("f16", quant=float8("block", "dynamic", upper_bound=1.2)),
                     in_features=1024, out_features=200),
        # The E4M3 GEMM over more tiles than multiprocessors (9 x 17 = 153 of 128 x 128, two
        # groups of 8 row tiles in the grouped order, the second partial) and N = 2104 (the last
        # column tile partial).
        *quant_cases("quant_linear_f8_row_dynamic_n2104_bf16", "quantized_linear",
                     ops_cfg("bf16", quant=float8("row", "dynamic")), (1100,),
                     in_features=512, out_features=2104),
        *quant_cases("quant_qkv_f8_row_dynamic_bf16", "quantized_qkv_projection",
                     config("bf16", (8, 2), 64, hidden=512, quant=float8("row", "dynamic"))),
        *quant_cases("quant_qkv_f8_tensor_static_f16", "quantized_qkv_projection",
                     config("f16", (8, 2), 64, hidden=512, quant=float8("tensor", "static"))),
        *quant_cases("quant_qkv_f8_block_dynamic_bf16", "quantized_qkv_projection",
                     config("bf16", (8, 2), 64, hidden=512, quant=float8("block", "dynamic"))),
        # GPTQ by M (the GEMV up to 64 rows, 32 from N 10240; the wgmma GEMM beyond): N (200) not a multiple of
        # the GEMM's 128 features nor of a word box's 32; desc_act (x permuted first) in f16;
        # groups of 32 (the mma.sync GEMM, 32-deep pipeline steps); q / k / v weights of 96, 32
        # and 32 rows in one launch (weight boundaries inside a block: each word box through
        # its weight's tensor map, each warp with its weight's scales).
        *quant_cases("quant_gemm_gptq_k2048_n200_bf16", "quantized_linear",
                     ops_cfg("bf16", quant=GPTQ), GPTQ_GEMM_TOKENS, in_features=2048,
                     out_features=200),
        *quant_cases("quant_gemm_gptq_desc_act_k1024_n200_f16", "quantized_linear",
                     ops_cfg("f16", quant=GPTQ_DESC_ACT), GPTQ_GEMM_TOKENS, in_features=1024,
                     out_features=200),
        *quant_cases("quant_gemm_gptq_g32_k512_n136_bf16", "quantized_linear",
                     ops_cfg("bf16", quant=GPTQ_G32), GPTQ_GEMM_TOKENS, in_features=512,
                     out_features=136),
        *quant_cases("quant_gemm_qkv_gptq_q96_bf16", "quantized_qkv_projection",
                     config("bf16", (3, 1), 32, hidden=256, quant=GPTQ), GPTQ_GEMM_TOKENS),
        # From N 10240 the wgmma GEMM takes over above 32 rows (gptqGemvMaxRows): 32 on the
        # GEMV, 33 and 64 on the GEMM.
        *quant_cases("quant_gemm_gptq_wide_k512_n10240_bf16", "quantized_linear",
                     ops_cfg("bf16", quant=GPTQ), (32, 33, 64), in_features=512,
                     out_features=10240),
        # Words in column blocks ([N/32, K/8, 32]) through every GPTQ kernel: the GEMV and the
        # wgmma GEMM (N 224: a GEMV block's second half and a GEMM word box past N), the
        # mma.sync GEMM (groups of 32), q / k / v weights in one launch.
        *quant_cases("quant_linear_gptq_blocks_k2048_n224_bf16", "quantized_linear",
                     ops_cfg("bf16", quant=GPTQ_BLOCKS), (1, 9, 40, 65, 512),
                     in_features=2048, out_features=224),
        *quant_cases("quant_linear_gptq_blocks_g32_k512_n128_f16", "quantized_linear",
                     ops_cfg("f16", quant=dict(GPTQ_G32, layout="column_blocks")), (8, 65),
                     in_features=512, out_features=128),
        *quant_cases("quant_qkv_gptq_blocks_bf16", "quantized_qkv_projection",
                     config("bf16", (8, 2), 64, hidden=512, quant=GPTQ_BLOCKS), (1, 16, 300)),
        # Whole layers with quantised q/k/v and o_proj: prefill (M = 278: the GPTQ GEMM), decode
        # (the GEMV at M <= 16) and a mixed batch (M = 172).
        *quant_layer_cases("quant_layer_bf16_gqa4_d128_p16_gptq",
                           config("bf16", (8, 2), 128, quant=GPTQ),
                           ("prefill", "decode", "mixed")),
        *quant_layer_cases("quant_layer_bf16_gqa4_d128_p16_gptq_blocks",
                           config("bf16", (8, 2), 128, quant=GPTQ_BLOCKS), ("prefill", "decode")),
        *quant_layer_cases("quant_layer_f16_gqa4_d128_p16_gptq_desc_act",
                           config("f16", (8, 2), 128, quant=GPTQ_DESC_ACT), ("decode",)),
        *quant_layer_cases("quant_layer_bf16_gqa4_d128_p16_f8_row_dynamic",
                           config("bf16", (8, 2), 128, quant=float8("row", "dynamic")),
                           ("decode",)),
    ]
    # The streaming GPTQ GEMV (GemvGPTQStreaming.cpp; modules ``*_streaming``, compiled with
    # --gpu-gptq-gemv=streaming): every GPTQ projection case of the GEMV's sizes and the GPTQ
    # layers' decode again.
    cases += [dataclasses.replace(c, name=f"{c.name}-streaming", module=f"{c.module}_streaming")
              for c in cases if c.module.startswith("quant_") and "gptq" in c.name
              and (c.params.get("tokens", 65) <= 64 or c.params.get("scenario") == "decode")]
    # One function for every layer of a 3-layer cache; layers outside it give status 1.
    mixed = dict(cached=SCENARIOS[16]["mixed"][0], new=SCENARIOS[16]["mixed"][1])
    cases.append(Case("store_attend_runtime_layer_bf16", "runtime_layer_bf16", "store_attend",
                      "runtime_layer", config("bf16", (8, 2), 128), mixed))
    # The same function captured in a CUDA graph and replayed on new inputs.
    cases.append(Case("store_attend_graph_capture_bf16", "runtime_layer_bf16", "store_attend",
                      "graph_capture", config("bf16", (8, 2), 128), dict(mixed, layer=2)))
    # The same function built with --abi-checks: a cache or key of another shape gives status 8.
    cases.append(Case("store_attend_abi_checks_bf16", "runtime_layer_bf16_abi_checks",
                      "store_attend", "abi_checks", config("bf16", (8, 2), 128), mixed))
    # Bad index values (statuses 3-7), found by the validation kernel: each call touches nothing,
    # attnCudaTakeStatus reports it, and a good call after it is right.
    cases.append(Case("store_attend_index_checks_bf16", "index_checks_bf16", "store_attend",
                      "index_checks", config("bf16", (8, 2), 128), mixed))
    cases.append(Case("rope_index_checks_bf16", "index_checks_bf16", "rope", "rope_index_checks",
                      config("bf16", (8, 2), 64),
                      dict(cached=ROPE_SCENARIO[0], new=ROPE_SCENARIO[1])))
    # The same in whole layers, where the checks run in an extra block of the q/k/v projection's
    # launch: the GEMV (decode, 6 rows), the wgmma GEMM of 64-row tiles (17 rows) and of 128-row
    # tiles (172 rows).
    for scenario in ("decode", "spec-decode", "mixed"):
        cases.append(Case(f"layer_index_checks-{scenario}_bf16", "index_checks_bf16",
                          "checked_layer", "layer_index_checks", config("bf16", (8, 2), 128),
                          dict(zip(("cached", "new"), SCENARIOS[16][scenario]),
                               scenario=scenario)))
    # And with GPTQ weights (no desc_act), whose GEMV (decode) or GEMM (mixed) carries them.
    for scenario in ("decode", "mixed"):
        cases.append(Case(f"layer_index_checks-{scenario}_gptq_bf16", "index_checks_bf16",
                          "checked_layer_gptq", "layer_index_checks",
                          config("bf16", (8, 2), 128, quant=GPTQ),
                          dict(zip(("cached", "new"), SCENARIOS[16][scenario]),
                               scenario=scenario)))
    # float8 and GPTQ with desc_act carry them in their x prologue (both paths).
    for scenario in ("decode", "mixed"):
        for tag, quant in (("f8_row_dynamic", float8("row", "dynamic")),
                           ("gptq_desc_act", GPTQ_DESC_ACT)):
            cases.append(Case(f"layer_index_checks-{scenario}_{tag}_bf16", "index_checks_bf16",
                              f"checked_layer_{tag}", "layer_index_checks",
                              config("bf16", (8, 2), 128, quant=quant),
                              dict(zip(("cached", "new"), SCENARIOS[16][scenario]),
                                   scenario=scenario)))
    return cases


# ---------------------------------------------------------------------------------------------
# MLIR text


def function_text(case):
    """The ``func.func`` of a case (functions are shared by name within a module)."""
    cfg, p, fn = case.cfg, case.params, case.function
    if case.kind in ("layer", "layer_index_checks"):
        if p.get("form") == "primitive":
            return ir.primitive_layer_function(fn, cfg)
        return ir.layer_function(fn, cfg)
    if case.kind == "paged_attention":
        return ir.paged_flash_attention_function(fn, cfg)
    if case.kind == "flash_attention":
        return ir.flash_attention_function(fn, cfg)
    if case.kind in ("rope", "rope_index_checks"):
        return ir.rope_function(fn, cfg)
    if case.kind == "rms_norm":
        return ir.rms_norm_function(fn, cfg, heads=p["heads"])
    if case.kind == "kv_cache_store":
        return ir.kv_cache_store_function(fn, cfg)
    if case.kind == "rope_store":
        return ir.rope_store_function(fn, cfg)
    if case.kind in ("qkv_projection", "quantized_qkv_projection"):
        return ir.qkv_projection_function(fn, cfg)
    if case.kind == "quantized_linear":
        return ir.quantized_linear_function(fn, cfg.quant, p["in_features"],
                                            p["out_features"], cfg.dtype,
                                            bias=p.get("bias", False))
    if case.kind in ("runtime_layer", "graph_capture", "abi_checks", "index_checks"):
        return store_attend_function(fn, cfg)
    if case.kind == "linear":
        return ir.linear_function(fn, cfg, in_features=p.get("in_features"),
                                  out_features=p.get("out_features"), bias=p.get("bias", False))
    raise ValueError(f"unknown case kind {case.kind!r}")


def store_attend_function(name, cfg):
    """``(layer: i32, q, k, v, row_offsets, blocks, cache_lengths, lookup_table) -> o``: the
    store and the attention of one step, the layer a run-time argument."""
    q = ir.tensor_type([None, cfg.num_heads, cfg.head_dim], cfg.dtype)
    kv = ir.tensor_type([None, cfg.num_kv_heads, cfg.head_dim], cfg.dtype)
    blocks = cfg.blocks_type()
    index = "tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>"
    return f"""func.func @{name}(%layer: i32, %q: {q}, %k: {kv}, %v: {kv},
    %row_offsets: tensor<?xi32>, %blocks: {blocks}, %cache_lengths: tensor<?xi32>,
    %lookup_table: tensor<?x?xi32>) -> ({q}, {blocks}) {{
  %b = attn.kv_cache_store %k, %v into %blocks layer(%layer : i32)
      positions(%row_offsets, %cache_lengths) pages(%lookup_table) : {kv}, {kv}, {index}, {blocks}
  %o = attn.paged_flash_attention %q, %b layer(%layer : i32)
      positions(%row_offsets, %cache_lengths) pages(%lookup_table) : {q}, {blocks}, {index}
  return %o, %b : {q}, {blocks}
}}"""


def module_texts(cases):
    """module name -> MLIR text, each function once (a shared name must mean one function)."""
    functions = {}
    for case in cases:
        fns = functions.setdefault(case.module, {})
        text = function_text(case)
        if fns.setdefault(case.function, text) != text:
            raise ValueError(f"function {case.function} defined twice with different bodies")
    return {m: ir.module_text(*fns.values()) for m, fns in functions.items()}


# ---------------------------------------------------------------------------------------------
# Compiling


#: attn-compile options of the modules whose name ends with the key.
MODULE_FLAGS = {"_unfused": ("--no-fuse",), "_abi_checks": ("--abi-checks",),
                "_mma_sync": ("--gpu-chip=sm_90",),
                "_streaming": ("--gpu-gptq-gemv=streaming",)}


def compile_cuda(mlir_path, so_path, flags=()):
    """Runs ``attn-compile --target=cuda`` (with ``$ATTN_COMPILE_FLAGS`` first, e.g.
    ``--no-runtime-checks`` to time the checks); returns (ok, seconds, stderr tail)."""
    start = time.monotonic()
    proc = subprocess.run([rt.attn_compile_path(), "--target=cuda", *rt.extra_compile_flags(),
                           *flags, mlir_path, "-o", so_path], capture_output=True, text=True)
    ok = proc.returncode == 0 and os.path.isfile(so_path)
    tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
    return ok, time.monotonic() - start, tail if not ok else ""


def build_modules(texts, outdir, jobs):
    """Writes and compiles every module (``jobs`` at a time); returns the manifest's modules."""
    def build(name):
        mlir, so = os.path.join(outdir, f"{name}.mlir"), os.path.join(outdir, f"{name}.so")
        with open(mlir, "w") as f:
            f.write(texts[name])
        if os.path.exists(so):
            os.remove(so)  # never run a stale library
        flags = next((f for suffix, f in MODULE_FLAGS.items() if name.endswith(suffix)), ())
        ok, seconds, error = compile_cuda(mlir, so, flags)
        print(f"  {name}: {'ok' if ok else 'FAILED'} ({seconds:.1f} s)", flush=True)
        if error:
            print("    " + error.replace("\n", "\n    "), flush=True)
        return name, {"so": f"{name}.so", "mlir": f"{name}.mlir", "ok": ok,
                      "compile_seconds": round(seconds, 1), "error": error}

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        return dict(pool.map(build, sorted(texts)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", nargs="?", default=os.path.join(REPO, "build", "device-tests"))
    parser.add_argument("--jobs", type=int, default=2, help="parallel compiles (default 2)")
    parser.add_argument("--only", default="", help="only cases whose name contains this")
    args = parser.parse_args()

    cases = [c for c in all_cases() if args.only in c.name]
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), "duplicate case names"
    os.makedirs(args.outdir, exist_ok=True)
    texts = module_texts(cases)
    print(f"building {len(cases)} cases in {len(texts)} modules into {args.outdir} "
          f"with {rt.attn_compile_path()}", flush=True)
    modules = build_modules(texts, args.outdir, args.jobs)
    if os.path.isfile(RUNTIME_LIB):
        shutil.copy2(RUNTIME_LIB, args.outdir)
    else:
        print(f"warning: {RUNTIME_LIB} not built; the libraries will not load", flush=True)
    manifest = {"target": "cuda", "modules": modules, "cases": [c.manifest() for c in cases]}
    with open(os.path.join(args.outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    failed = [m for m, info in modules.items() if not info["ok"]]
    print(f"wrote {os.path.join(args.outdir, 'manifest.json')}: {len(cases)} cases, "
          f"{len(modules) - len(failed)}/{len(modules)} modules built"
          + (f" (failed: {', '.join(failed)})" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
