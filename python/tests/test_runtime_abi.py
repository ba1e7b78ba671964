"""The descriptor ABI of attn.runtime, checked on small functions built with upstream MLIR tools.

A stand-in for ``attn-compile --target=cpu`` (a shell script around mlir-opt, attn-opt's
attn-entry-status, mlir-translate and
clang) builds the libraries, so ``compile_cpu`` and ``CompiledLibrary`` are exercised end to end.
"""

import ctypes
import os
import re
import shutil
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from attn import runtime as rt  # noqa: E402

LLVM_BIN = os.environ.get("LLVM_BIN", "/usr/lib/llvm-22/bin")
TOOLS = [os.path.join(LLVM_BIN, t) for t in ("mlir-opt", "mlir-translate", "clang-22")]
ATTN_OPT = os.path.join(os.path.dirname(rt.attn_compile_path()), "attn-opt")
needs_llvm = pytest.mark.skipif(
    not all(os.path.isfile(t) for t in TOOLS),
    reason=f"upstream mlir-opt/mlir-translate/clang-22 not found in {LLVM_BIN} (set LLVM_BIN)",
)

# Upstream LLVM 22 skips public functions in --drop-equivalent-buffer-results, so the stand-in
# privatises them first; the C wrappers are still exported (external linkage).
PIPELINE_BUFFERS = (
    "--llvm-request-c-wrappers "
    '--one-shot-bufferize="bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map" '
    "--symbol-privatize --drop-equivalent-buffer-results "
    '--buffer-results-to-out-params="modify-public-functions hoist-dynamic-allocs" '
)
# Then attn-opt gives the entry points (C wrappers) their int32 status, as attn-compile does.
PIPELINE_LLVM = (
    "--convert-linalg-to-loops --arith-expand=include-bf16 --convert-scf-to-cf "
    "--expand-strided-metadata --lower-affine --convert-to-llvm --reconcile-unrealized-casts"
)

FAKE_ATTN_COMPILE = f"""#!/bin/sh
set -e
[ "$1" = "--target=cpu" ] && [ "$3" = "-o" ] || {{ echo "usage: --target=cpu IN -o OUT" >&2; exit 2; }}
{LLVM_BIN}/mlir-opt "$2" {PIPELINE_BUFFERS} | {ATTN_OPT} --attn-entry-status | \\
  {LLVM_BIN}/mlir-opt {PIPELINE_LLVM} -o "$4.llvm.mlir"
{LLVM_BIN}/mlir-translate --mlir-to-llvmir "$4.llvm.mlir" -o "$4.ll"
{LLVM_BIN}/clang-22 -shared -fPIC -O2 -Wno-override-module "$4.ll" -o "$4"
"""

MODULE = """
#id1 = affine_map<(d0) -> (d0)>
#id2 = affine_map<(d0, d1) -> (d0, d1)>
func.func @axpy(%x: tensor<?x4xf32>, %y: tensor<?x4xf32>) -> tensor<?x4xf32> {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?x4xf32>
  %init = tensor.empty(%n) : tensor<?x4xf32>
  %r = linalg.generic {indexing_maps = [#id2, #id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%x, %y : tensor<?x4xf32>, tensor<?x4xf32>) outs(%init : tensor<?x4xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %two = arith.constant 2.0 : f32
    %m = arith.mulf %a, %two : f32
    %s = arith.addf %m, %b : f32
    linalg.yield %s : f32
  } -> tensor<?x4xf32>
  return %r : tensor<?x4xf32>
}
func.func @sub1(%x: tensor<?xf32>, %y: tensor<?xf32>) -> tensor<?xf32> {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?xf32>
  %init = tensor.empty(%n) : tensor<?xf32>
  %r = linalg.sub ins(%x, %y : tensor<?xf32>, tensor<?xf32>) outs(%init : tensor<?xf32>) -> tensor<?xf32>
  return %r : tensor<?xf32>
}
func.func @iadd(%x: tensor<?xi32>, %y: tensor<?xi32>) -> tensor<?xi32> {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?xi32>
  %init = tensor.empty(%n) : tensor<?xi32>
  %r = linalg.add ins(%x, %y : tensor<?xi32>, tensor<?xi32>) outs(%init : tensor<?xi32>) -> tensor<?xi32>
  return %r : tensor<?xi32>
}
func.func @perm3(%x: tensor<?x?x?xf32>) -> tensor<?x?x?xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %d0 = tensor.dim %x, %c0 : tensor<?x?x?xf32>
  %d1 = tensor.dim %x, %c1 : tensor<?x?x?xf32>
  %d2 = tensor.dim %x, %c2 : tensor<?x?x?xf32>
  %init = tensor.empty(%d2, %d0, %d1) : tensor<?x?x?xf32>
  %r = linalg.transpose ins(%x : tensor<?x?x?xf32>) outs(%init : tensor<?x?x?xf32>) permutation = [2, 0, 1]
  return %r : tensor<?x?x?xf32>
}
func.func @update(%blocks: tensor<?x2x3xf32>, %row: tensor<2x3xf32>, %idx: tensor<1xi32>) -> tensor<?x2x3xf32> {
  %c0 = arith.constant 0 : index
  %i32 = tensor.extract %idx[%c0] : tensor<1xi32>
  %i = arith.index_cast %i32 : i32 to index
  %r = tensor.insert_slice %row into %blocks[%i, 0, 0] [1, 2, 3] [1, 1, 1] : tensor<2x3xf32> into tensor<?x2x3xf32>
  return %r : tensor<?x2x3xf32>
}
func.func @step(%blocks: tensor<?x2x3xf32>, %row: tensor<2x3xf32>, %idx: tensor<1xi32>, %x: tensor<?xf32>)
    -> (tensor<?x2x3xf32>, tensor<?xf32>) {
  %c0 = arith.constant 0 : index
  %i32 = tensor.extract %idx[%c0] : tensor<1xi32>
  %i = arith.index_cast %i32 : i32 to index
  %b = tensor.insert_slice %row into %blocks[%i, 0, 0] [1, 2, 3] [1, 1, 1] : tensor<2x3xf32> into tensor<?x2x3xf32>
  %n = tensor.dim %x, %c0 : tensor<?xf32>
  %init = tensor.empty(%n) : tensor<?xf32>
  %y = linalg.sub ins(%x, %x : tensor<?xf32>, tensor<?xf32>) outs(%init : tensor<?xf32>) -> tensor<?xf32>
  return %b, %y : tensor<?x2x3xf32>, tensor<?xf32>
}
func.func @triple_f16(%x: tensor<?xf16>) -> tensor<?xf16> {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?xf16>
  %init = tensor.empty(%n) : tensor<?xf16>
  %r = linalg.generic {indexing_maps = [#id1, #id1], iterator_types = ["parallel"]}
      ins(%x : tensor<?xf16>) outs(%init : tensor<?xf16>) {
  ^bb0(%a: f16, %o: f16):
    %e = arith.extf %a : f16 to f32
    %three = arith.constant 3.0 : f32
    %m = arith.mulf %e, %three : f32
    %t = arith.truncf %m : f32 to f16
    linalg.yield %t : f16
  } -> tensor<?xf16>
  return %r : tensor<?xf16>
}
func.func @triple_bf16(%x: tensor<?xbf16>) -> tensor<?xbf16> {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?xbf16>
  %init = tensor.empty(%n) : tensor<?xbf16>
  %r = linalg.generic {indexing_maps = [#id1, #id1], iterator_types = ["parallel"]}
      ins(%x : tensor<?xbf16>) outs(%init : tensor<?xbf16>) {
  ^bb0(%a: bf16, %o: bf16):
    %e = arith.extf %a : bf16 to f32
    %three = arith.constant 3.0 : f32
    %m = arith.mulf %e, %three : f32
    %t = arith.truncf %m : f32 to bf16
    linalg.yield %t : bf16
  } -> tensor<?xbf16>
  return %r : tensor<?xbf16>
}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(CompiledLibrary, LLVM IR text) of MODULE, built through compile_cpu and the stand-in."""
    if not all(os.path.isfile(t) for t in TOOLS):
        pytest.skip(f"upstream mlir-opt/mlir-translate/clang-22 not found in {LLVM_BIN}")
    tmp = tmp_path_factory.mktemp("abi")
    tool = tmp / "fake-attn-compile"
    tool.write_text(FAKE_ATTN_COMPILE)
    tool.chmod(0o755)
    with pytest.MonkeyPatch.context() as mp:  # the stand-in takes no attn-compile options
        mp.delenv("ATTN_COMPILE_FLAGS", raising=False)
        so = rt.compile_cpu(MODULE, tmp / "abi.so", attn_compile=str(tool))
    lib = rt.CompiledLibrary(so)
    llvm_ir = (tmp / "abi.so.ll").read_text()
    yield lib, llvm_ir
    shutil.rmtree(tmp, ignore_errors=True)


def c_arity(llvm_ir, name):
    """Number of pointer parameters of ``_mlir_ciface_<name>`` in the LLVM IR."""
    m = re.search(rf"define (?:noundef )?i32 @_mlir_ciface_{name}\(([^)]*)\)", llvm_ir)
    assert m, f"_mlir_ciface_{name} not defined"
    params = [p for p in m.group(1).split(",") if p.strip()]
    assert all(p.strip().startswith("ptr") for p in params)
    return len(params)


# ---------------------------------------------------------------------------------------------
# Descriptors and bf16 (no compiler needed)


def test_descriptor_layout():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    d = rt.as_descriptor(a)
    assert ctypes.sizeof(rt.MemRefDescriptor(3)) == 8 * (3 + 2 * 3)
    assert [f for f, _ in rt.MemRefDescriptor(1)._fields_] == [
        "allocated", "aligned", "offset", "sizes", "strides"]
    assert d.allocated == d.aligned == a.ctypes.data and d.offset == 0
    assert list(d.sizes) == [2, 3, 4] and list(d.strides) == [12, 4, 1]
    assert rt.MemRefDescriptor(2) is rt.MemRefDescriptor(2)
    # Size-1 dims: strides from the shape, not numpy's (arbitrary) byte strides.
    assert list(rt.as_descriptor(np.zeros((1, 5, 1), np.int32)).strides) == [5, 1, 1]


def test_descriptor_rejects_bad_arrays():
    with pytest.raises(ValueError, match="C-contiguous"):
        rt.as_descriptor(np.zeros((3, 4), np.float32).T)
    with pytest.raises(TypeError, match="unsupported element type"):
        rt.as_descriptor(np.zeros(3, np.int64))
    with pytest.raises(TypeError):
        rt.as_descriptor([1.0, 2.0])


def test_bf16_bits():
    # Ties go to even; NaN stays NaN; every non-NaN pattern round-trips.
    x = np.array([1.0, 1 + 2**-8, 1 + 3 * 2**-8, -2.5, np.inf, np.nan], dtype=np.float32)
    bits = rt.to_bf16_bits(x)
    assert bits.dtype == np.uint16
    assert list(bits[:5]) == [0x3F80, 0x3F80, 0x3F82, 0xC020, 0x7F80]
    assert np.isnan(rt.from_bf16_bits(bits[5:]))[0]
    allbits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    vals = rt.from_bf16_bits(allbits)
    keep = ~np.isnan(vals)
    np.testing.assert_array_equal(rt.to_bf16_bits(vals[keep]), allbits[keep])
    # float64 input is rounded once (no double rounding through float32).
    y = np.float64(1 + 2**-8 + 2**-30)
    assert rt.to_bf16_bits(y) == 0x3F81  # via float32 it would tie and round to even (0x3F80)
    assert rt.to_abi([1.0, 2.0], "bf16").dtype == np.uint16
    assert rt.to_abi([1.0], "f16").dtype == np.float16


def test_compile_cpu_arguments(tmp_path, monkeypatch):
    # Text and file inputs both reach the tool as `--target=cpu SRC -o OUT`.
    monkeypatch.delenv("ATTN_COMPILE_FLAGS", raising=False)
    echo = tmp_path / "echo-attn-compile"
    echo.write_text('#!/bin/sh\necho "$@" > "$4.args"\ncp "$2" "$4"\n')
    echo.chmod(0o755)
    src = tmp_path / "in.mlir"
    src.write_text("func.func @f() { return }\n")
    for source, is_file in ((src, True), (str(src), True), (src.read_text(), False)):
        out = rt.compile_cpu(source, tmp_path / "out.so", attn_compile=str(echo))
        assert out == str(tmp_path / "out.so")
        assert open(out).read() == src.read_text()
        args = open(out + ".args").read().split()
        assert args[0] == "--target=cpu" and args[2:] == ["-o", out]
        assert (args[1] == str(src)) == is_file
    with pytest.raises(FileNotFoundError):
        rt.compile_cpu(tmp_path / "missing.mlir", tmp_path / "x.so", attn_compile=str(echo))


def test_compile_cpu_extra_flags(tmp_path, monkeypatch):
    # $ATTN_COMPILE_FLAGS (split on whitespace) comes before the call's own flags.
    echo = tmp_path / "echo-attn-compile"
    echo.write_text('#!/bin/sh\necho "$@" > "$OUT_ARGS"\n')
    echo.chmod(0o755)
    monkeypatch.setenv("OUT_ARGS", str(tmp_path / "args"))
    monkeypatch.setenv("ATTN_COMPILE_FLAGS", " --sanitize=address  --mcpu=x86-64-v3 ")
    rt.compile_cpu("func.func @f() { return }", tmp_path / "x.so", attn_compile=str(echo),
                   flags=("--no-fuse",))
    args = open(tmp_path / "args").read().split()
    assert args[:4] == ["--target=cpu", "--sanitize=address", "--mcpu=x86-64-v3", "--no-fuse"]
    assert args[-2:] == ["-o", str(tmp_path / "x.so")]


def test_compile_cpu_drops_preloaded_asan(tmp_path, monkeypatch):
    # attn-compile runs without a preloaded ASan runtime; other preloads stay.
    echo = tmp_path / "env-attn-compile"
    echo.write_text('#!/bin/sh\necho "${LD_PRELOAD-unset}" > "$OUT_ENV"\n')
    echo.chmod(0o755)
    monkeypatch.setenv("OUT_ENV", str(tmp_path / "env"))
    for preload, seen in (("/x/libclang_rt.asan-x86_64.so", "unset"),
                          ("/x/libclang_rt.asan-x86_64.so:/y/libz.so", "/y/libz.so")):
        monkeypatch.setenv("LD_PRELOAD", preload)
        rt.compile_cpu("func.func @f() { return }", tmp_path / "x.so", attn_compile=str(echo))
        assert open(tmp_path / "env").read().strip() == seen


def test_compile_cpu_reports_stderr(tmp_path):
    bad = tmp_path / "bad-attn-compile"
    bad.write_text("#!/bin/sh\necho 'error: something went wrong' >&2\nexit 3\n")
    bad.chmod(0o755)
    with pytest.raises(rt.CompileError, match="something went wrong"):
        rt.compile_cpu("func.func @f() { return }", tmp_path / "x.so", attn_compile=str(bad))
    with pytest.raises(FileNotFoundError):
        rt.compile_cpu("func.func @f() { return }", tmp_path / "x.so",
                       attn_compile=str(tmp_path / "missing"))


# ---------------------------------------------------------------------------------------------
# Calls into compiled code


@needs_llvm
def test_out_param_rank2(built):
    lib, llvm_ir = built
    assert c_arity(llvm_ir, "axpy") == 3  # x, y, out
    x = np.arange(20, dtype=np.float32).reshape(5, 4)
    y = np.full((5, 4), 0.5, dtype=np.float32)
    out = np.zeros((5, 4), dtype=np.float32)
    lib.call("axpy", [x, y], [out])
    np.testing.assert_array_equal(out, 2 * x + y)


@needs_llvm
def test_rank1_and_i32(built):
    lib, _ = built
    x = np.linspace(0, 1, 7, dtype=np.float32)
    y = np.arange(7, dtype=np.float32)
    out = np.empty(7, dtype=np.float32)
    lib.call("sub1", [x, y], [out])
    np.testing.assert_array_equal(out, x - y)
    a = np.array([1, -2, 2**31 - 10, 0], dtype=np.int32)
    b = np.array([5, 7, 9, -1], dtype=np.int32)
    c = np.empty(4, dtype=np.int32)
    lib.call("iadd", [a, b], [c])
    np.testing.assert_array_equal(c, a + b)


@needs_llvm
def test_rank3_sizes_and_strides(built):
    lib, _ = built
    x = np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)
    out = np.empty((3, 2, 5), dtype=np.float32)
    lib.call("perm3", [x], [out])
    np.testing.assert_array_equal(out, np.transpose(x, (2, 0, 1)))


@needs_llvm
def test_in_place_result_is_dropped(built):
    lib, llvm_ir = built
    assert c_arity(llvm_ir, "update") == 3  # blocks, row, idx: no out-parameter
    blocks = np.arange(4 * 6, dtype=np.float32).reshape(4, 2, 3)
    before = blocks.copy()
    row = -np.ones((2, 3), dtype=np.float32)
    lib.call("update", [blocks, row, np.array([2], dtype=np.int32)], [])
    want = before.copy()
    want[2] = row
    np.testing.assert_array_equal(blocks, want)  # the caller's buffer was written


@needs_llvm
def test_in_place_and_out_results_mixed(built):
    # Results (updated blocks, y): the blocks result is dropped, y is the one trailing out-param.
    lib, llvm_ir = built
    assert c_arity(llvm_ir, "step") == 5
    blocks = np.zeros((3, 2, 3), dtype=np.float32)
    row = np.arange(6, dtype=np.float32).reshape(2, 3)
    x = np.arange(4, dtype=np.float32)
    y = np.full(4, 7.0, dtype=np.float32)
    lib.call("step", [blocks, row, np.array([1], dtype=np.int32), x], [y])
    np.testing.assert_array_equal(blocks[1], row)
    assert not blocks[[0, 2]].any()
    np.testing.assert_array_equal(y, np.zeros(4))


@needs_llvm
def test_f16_and_bf16(built):
    lib, _ = built
    x = np.array([0.1, -1.5, 300.0, 1e-3, 65504 / 4], dtype=np.float16)
    out = np.empty_like(x)
    lib.call("triple_f16", [x], [out])
    np.testing.assert_array_equal(out, (x.astype(np.float32) * 3).astype(np.float16))

    xb = rt.to_bf16_bits(np.array([0.1, -1.5, 3e38 / 4, 1.0 + 2**-7, 7.0], dtype=np.float32))
    outb = np.empty_like(xb)
    lib.call("triple_bf16", [xb], [outb])
    np.testing.assert_array_equal(outb, rt.to_bf16_bits(rt.from_bf16_bits(xb) * 3))


@needs_llvm
def test_missing_symbol(built):
    lib, _ = built
    with pytest.raises(AttributeError, match="_mlir_ciface_nope"):
        lib.call("nope", [], [])


# ---------------------------------------------------------------------------------------------
# Signatures: calls whose arguments differ from the function are refused before the call


def test_parse_signatures():
    sigs = rt.parse_signatures("f i32 index memref<f32> memref<?x8xf8E4M3FN>\ng\n")
    assert list(sigs) == ["f", "g"] and sigs["g"] == []
    i32, index, scalar, fp8 = sigs["f"]
    assert not i32.is_memref and i32.element == "i32" and index.element == "index"
    assert scalar.is_memref and scalar.shape == () and scalar.element == "f32"
    assert fp8.shape == (None, 8) and fp8.element == "f8E4M3FN"
    assert i32.mismatch(np.int32(3)) is None
    assert "scalar i32" in i32.mismatch(np.int64(3))
    assert "scalar index" in index.mismatch(np.zeros(1, np.int64))
    assert fp8.mismatch(np.zeros((5, 8), np.uint8)) is None
    assert "uint8 buffer" in fp8.mismatch(np.zeros((5, 8), np.int8))
    assert "shape (5, 9)" in fp8.mismatch(np.zeros((5, 9), np.uint8))
    assert "shape (8,)" in fp8.mismatch(np.zeros(8, np.uint8))
    assert "got a scalar (int32)" in scalar.mismatch(np.int32(1))


@needs_llvm
def test_signatures_exported(built):
    lib, _ = built
    assert [t.text for t in lib.signatures["axpy"]] == ["memref<?x4xf32>"] * 3
    assert [t.text for t in lib.signatures["update"]] == [
        "memref<?x2x3xf32>", "memref<2x3xf32>", "memref<1xi32>"]
    assert [t.text for t in lib.signatures["triple_bf16"]] == ["memref<?xbf16>"] * 2


@needs_llvm
@pytest.mark.parametrize("bad, message", [
    (lambda x, y, out: ([x], [out]), "axpy takes 3 arguments .* got 2"),
    (lambda x, y, out: ([x, y, y], [out]), "axpy takes 3 arguments .* got 4"),
    (lambda x, y, out: ([x.reshape(20), y], [out]), r"argument 0: .* got shape \(20,\)"),
    (lambda x, y, out: ([x, y], [np.zeros((5, 5), np.float32)]), r"argument 2: .*\(5, 5\)"),
    (lambda x, y, out: ([x, y.view(np.int32)], [out]), "argument 1: .*float32 buffer.*int32"),
    (lambda x, y, out: ([np.int32(5), y], [out]), "argument 0: a memref<.x4xf32> is expected"),
])
def test_call_refuses_mismatched_arguments(built, bad, message):
    # A wrong count, rank, static size or element type is refused before the call reads a
    # descriptor (the heap corruption a wrong part list once caused); nothing is written.
    lib, _ = built
    x = np.arange(20, dtype=np.float32).reshape(5, 4)
    y = np.full((5, 4), 0.5, dtype=np.float32)
    out = np.full((5, 4), np.nan, dtype=np.float32)
    inputs, outputs = bad(x, y, out)
    with pytest.raises(rt.SignatureError, match=message):
        lib.call("axpy", inputs, outputs)
    assert np.isnan(out).all()


@needs_llvm
def test_call_prepared_refuses_mismatched_descriptors(built):
    lib, _ = built
    blocks = np.zeros((3, 2, 3), np.float32)
    row = np.ones((2, 3), np.float32)
    idx = np.array([1], np.int32)
    good = [rt.as_descriptor(a) for a in (blocks, row, idx)]
    lib.call_prepared("update", good)
    np.testing.assert_array_equal(blocks[1], row)
    with pytest.raises(rt.SignatureError, match="takes 3 arguments"):
        lib.call_prepared("update", good[:2])
    with pytest.raises(rt.SignatureError, match=r"argument 1: .*got shape \(3, 2\)"):
        lib.call_prepared("update", [good[0], rt.as_descriptor(np.ones((3, 2), np.float32)),
                                     good[2]])
    # Element types are checked through the descriptor's owner.
    with pytest.raises(rt.SignatureError, match="argument 2: .*int32 buffer"):
        lib.call_prepared("update", [*good[:2], rt.as_descriptor(np.ones(1, np.float32))])
