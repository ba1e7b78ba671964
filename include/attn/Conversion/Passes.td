//===- Passes.td - attn conversion passes ------------------*- tablegen -*-===//

#ifndef ATTN_CONVERSION_PASSES_TD
#define ATTN_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertAttnToLinalg : Pass<"convert-attn-to-linalg"> {
  let summary = "Lower the primitive attn ops to CPU kernels: scf / vector "
                "loops on tensors, linalg generics as the fallback";
  let description = [{
    Every primitive op becomes a CPU kernel on tensors that bufferises in
    place: `scf` loops over `vector` register blocks where the shapes allow
    (multiples of 8), and `linalg.generic` only as the fallback where they
    don't. The pass keeps its historical name, `convert-attn-to-linalg`
    (linalg was its only target once), because the pipelines, tools, tests
    and scripts name it; the name does not describe what it emits.

    Per op:
    - `attn.qkv_projection` / `attn.linear`: `x @ W^T` accumulated in f32 —
      with many rows an outer-product GEMM on a packed, transposed chunk of
      `W`, with few rows vector dot products (both parallel over column
      chunks), or `linalg.generic` contractions where the shapes don't fit;
      weight clipping applied to the weight as it is read, bias added in the
      epilogue, slices and `tensor.expand_shape` to `[T, heads, D]`; GGUF
      weights with at most `int8-max-rows` rows (decode batches) and
      `int8-dot` set: the activations quantised per row (Q8_K for Q4_K /
      Q6_K, Q8_0 for Q4_0 / Q8_0) and integer dot products (`GGUFInt8.cpp`);
    - `attn.rms_norm`: an f32 sum-of-squares reduction and a scaling generic;
    - `attn.rope`: per-row positions from the row offsets and cache lengths,
      cos/sin computed in f64 from the rope attribute (or gathered from a
      table operand), one rotation generic;
    - `attn.rope_freqs`: the table as one generic;
    - `attn.kv_cache_store`: `scf.for` over sequences and rows inserting
      into the blocks (the destination), so the cache is updated in place;
    - `attn.flash_attention` / `attn.paged_flash_attention`: when no
      sequence has more than one query row (checked at run time), the split
      decode: `scf.forall` over (sequence, chunk of key tiles), each item
      walking its keys with the rows of all kv heads of a slot read together,
      then a combine `scf.forall` over sequences; otherwise `scf.forall` over
      sequences x kv heads, the keys and values of the pair packed once into
      register-block panels, and per query tile (query rows x the GQA group)
      an online-softmax `scf.for` over key tiles (one cache page, or
      `kv-tile` explicit rows); causal and sliding-window tiles outside the
      window are skipped and no S x S buffer exists. Head dims or tiles that
      are not multiples of 8 take linalg generics with exp2 and the scale
      folded into q.

    Before:
    ```mlir
    %o = attn.linear %x, %w : tensor<?x64xf32>, tensor<32x64xf32> -> tensor<?x32xf32>
    ```
    After:
    ```mlir
    %acc = linalg.generic {indexing_maps = [(t, n, k) -> (t, k), (t, n, k) -> (n, k),
                           (t, n, k) -> (t, n)], iterator_types = ["parallel",
                           "parallel", "reduction"]} ins(%x, %w ...) outs(%zero ...)
    ```
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect",
                           "::mlir::tensor::TensorDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::vector::VectorDialect",
                           "::mlir::func::FuncDialect"];
  let options = [
    Option<"queryTileRows", "q-tile-rows", "int64_t", /*default=*/"128",
           "Rows of a flash-attention query tile (query rows x GQA group)">,
    Option<"kvTile", "kv-tile", "int64_t", /*default=*/"128",
           "Keys per tile for attention over explicit K/V">,
    Option<"vectorLanes", "vector-lanes", "int64_t", /*default=*/"8",
           "f32 lanes of the projection kernels' vectors (8: AVX2, 16: "
           "AVX-512; 0 keeps linalg contractions)">,
    Option<"packedMinRows", "packed-min-rows", "int64_t", /*default=*/"16",
           "Rows from which projections use the packed outer-product GEMM "
           "instead of dot products (0: never; GPTQ weights take their own "
           "kernel at every row count)">,
    Option<"decodeItems", "decode-items", "int64_t", /*default=*/"64",
           "Work items the split decode aims for when no sequence has more "
           "than one query row: (sequence, key chunk) pairs over all kv heads, "
           "combined afterwards (0: one item per sequence and kv head)">,
    Option<"int8Dot", "int8-dot", "std::string", /*default=*/"\"none\"",
           "Integer dot products of GGUF projections with few rows: "
           "avx512-vnni (vpmaddubsw + vpdpwssd, vpdpbusd), avx2 (vpmaddubsw, "
           "vpmaddwd) "
           "or none (weights decoded to f32 at every row count)">,
    Option<"int8MaxRows", "int8-max-rows", "int64_t", /*default=*/"64",
           "Rows up to which GGUF projections quantise their activations "
           "(Q8_K, Q8_0) and use the int8-dot kernel">,
  ];
}

def ConvertAttnToGPU : Pass<"convert-attn-to-gpu", "ModuleOp"> {
  let summary = "Lower functions of primitive attn ops to host code launching GPU kernels";
  let description = [{
    Each function becomes a host function on device buffers (memrefs) that
    launches one kernel per op; the kernels go to `gpu.module @attn_kernels`
    and use gpu, nvgpu and NVVM ops:
    - `attn.flash_attention` / `attn.paged_flash_attention`: a block of four
      warps per (64-row query tile of (row, GQA head) pairs, kv head,
      sequence x key split); K/V tiles of 64 keys staged in shared memory
      (through the page table for the cache); `nvgpu.ldmatrix` +
      `nvvm.mma.sync` m16n8k16 for Q K^T and P V with f32 accumulators;
      online softmax with exp2 in registers; tiles outside the causal /
      sliding window skipped. Batches with few query tiles split the keys
      across blocks (flash-decoding) and a combine kernel merges the parts.
    - `attn.qkv_projection` / `attn.linear`: a tensor-core GEMM (64 x 64
      tiles), weight clipping while staging, bias and the q / k / v split
      in the epilogue.
    - `attn.rope` (angles in f64 from the rope attribute, or a table),
      `attn.rms_norm` (a warp per row), `attn.kv_cache_store` (16-byte
      chunks, in place into the caller's cache), `attn.rope_freqs` when a
      table is needed.
    Arguments keep their order; results that are (updated) arguments are
    dropped and the others become trailing out-parameters, as in
    docs/ABI.md. The functions get `llvm.emit_c_interface`.

    Before:
    ```mlir
    func.func @o(%x: tensor<?x64xbf16>, %w: tensor<32x64xbf16>) -> tensor<?x32xbf16> {
      %y = attn.linear %x, %w : tensor<?x64xbf16>, tensor<32x64xbf16> -> tensor<?x32xbf16>
      return %y : tensor<?x32xbf16>
    }
    ```
    After:
    ```mlir
    func.func @o(%x: memref<?x64xbf16>, %w: memref<32x64xbf16>, %y: memref<?x32xbf16>)
        attributes {llvm.emit_c_interface} {
      gpu.launch_func @attn_kernels::@matmul blocks in (%c1, %rows, %c1)
          threads in (%c128, %c1, %c1) args(%x : ..., %w : ..., %y : ...)
      return
    }
    gpu.module @attn_kernels {
      gpu.func @matmul(...) workgroup(...) kernel { ... nvvm.mma.sync ... }
    }
    ```
  }];
  let dependentDialects = ["::mlir::gpu::GPUDialect",
                           "::mlir::nvgpu::NVGPUDialect",
                           "::mlir::NVVM::NVVMDialect",
                           "::mlir::LLVM::LLVMDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::scf::SCFDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect",
                           "::mlir::vector::VectorDialect"];
  let options = [
    Option<"smCount", "sm-count", "int64_t", /*default=*/"132",
           "Multiprocessors of the target GPU (decides key splits)">,
    Option<"maxSplits", "max-splits", "int64_t", /*default=*/"64",
           "Most key splits of one attention launch">,
    Option<"wgmma", "wgmma", "bool", /*default=*/"true",
           "Prefill attention on Hopper's warpgroup MMA (sm_90a) for head "
           "dims 64 and 128; mma.sync otherwise">,
    Option<"validateIndexValues", "validate-index-values", "bool",
           /*default=*/"false",
           "Public functions first launch a kernel checking the values of "
           "their index tensors (statuses 3-7) into the status word "
           "`@attn_status`; the kernels indexing through them skip their "
           "work while it is non-zero">,
    Option<"gptqGemv", "gptq-gemv", "std::string", /*default=*/"\"tma-ring\"",
           "The GEMV of GPTQ projections at decode sizes: tma-ring (each "
           "warp's TMA ring of K units in shared memory) or streaming (the "
           "words loaded straight into registers, 32 columns a block)">,
  ];
}

def AttnGridConstantTensorMaps
    : Pass<"attn-grid-constant-tensor-maps", "::mlir::gpu::GPUModuleOp"> {
  let summary = "Pass TMA tensor maps to kernels as __grid_constant__ parameters";
  let description = [{
    A kernel that loads with TMA takes each 128-byte CUtensorMap by value, as
    an `!llvm.array<16 x i64>` argument, and loads through the address of a
    local copy (an `llvm.alloca` the argument is stored to; see
    lib/Conversion/AttnToGPU/TensorMaps.h). TMA cannot read local memory, so
    after the kernels are in the LLVM dialect this pass makes each such
    argument a `byval` pointer to the parameter itself (align 64,
    `nvvm.grid_constant`, as CUDA's `__grid_constant__ const CUtensorMap`)
    and drops the copy. The host side is unchanged: it still passes the 128
    bytes by value.

    Before:
    ```mlir
    llvm.func @gemm(%map: !llvm.array<16 x i64>, ...) attributes {nvvm.kernel} {
      %copy = llvm.alloca %one x !llvm.array<16 x i64> {alignment = 64 : i64} : (i64) -> !llvm.ptr
      llvm.store %map, %copy : !llvm.array<16 x i64>, !llvm.ptr
      nvvm.cp.async.bulk.tensor.shared.cluster.global %dst, %copy, %bar, box[%c, %r] ...
    ```
    After:
    ```mlir
    llvm.func @gemm(%map: !llvm.ptr {llvm.align = 64 : i32,
                                      llvm.byval = !llvm.array<16 x i64>,
                                      nvvm.grid_constant}, ...) attributes {nvvm.kernel} {
      nvvm.cp.async.bulk.tensor.shared.cluster.global %dst, %map, %bar, box[%c, %r] ...
    ```
    An `!llvm.array<16 x i64>` kernel argument used any other way is an
    error.
  }];
  let dependentDialects = ["::mlir::NVVM::NVVMDialect"];
}

def AttnDependentLaunch
    : Pass<"attn-dependent-launch", "::mlir::gpu::GPUModuleOp"> {
  let summary = "Let each kernel start while the one before it finishes";
  let description = [{
    Hopper's programmatic dependent launch: a kernel launched with the
    programmatic-stream-serialization attribute may start before the kernel
    before it on the stream has finished, once every block of that kernel
    has executed `griddepcontrol.launch_dependents`; its own
    `griddepcontrol.wait` then returns when that kernel has finished and its
    memory operations are visible. This pass makes every kernel of the
    module safe to launch that way and lets its successor start early: each
    kernel first signals `launch_dependents`, then waits, and only then runs
    its body. The kernel's blocks are thus resident and waiting when their
    predecessor ends, instead of being launched after it (about a
    microsecond per kernel boundary on an H200).

    The pass also defines the constant global `@attn_dependent_launch`
    (1); the runtime launches a module's kernels with the attribute only
    when the module has it (docs/ABI.md), so that a module compiled without
    the pass is never launched early.

    Before:
    ```mlir
    gpu.module @attn_kernels {
      llvm.func @gemv(...) attributes {nvvm.kernel} {
        %x = llvm.load ...
    ```
    After:
    ```mlir
    gpu.module @attn_kernels {
      llvm.mlir.global external constant @attn_dependent_launch(1 : i32) {addr_space = 1 : i32} : i32
      llvm.func @gemv(...) attributes {nvvm.kernel} {
        llvm.inline_asm has_side_effects "griddepcontrol.launch_dependents;", "~{memory}"  : () -> ()
        llvm.inline_asm has_side_effects "griddepcontrol.wait;", "~{memory}"  : () -> ()
        %x = llvm.load ...
    ```
  }];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
}

def AttnLowerAllReduceToMPI : Pass<"attn-lower-all-reduce-to-mpi", "ModuleOp"> {
  let summary = "shard.all_reduce of attn-shard to MPI_Allreduce over MPI_COMM_WORLD";
  let description = [{
    Lowers every `shard.all_reduce` (sum over the whole 1-D grid, as
    `attn-shard` makes it) on a tensor to `mpi.allreduce` from the input's
    buffer into a new one over `mpi.comm_world`: one process per device. Sums
    of bf16 / f16 run in f32 (extended before, rounded once after). The grid
    is erased and the module gets `dlti.map<"MPI:Implementation" =
    "OpenMPI">` unless it names an implementation; the caller initialises
    MPI. Upstream `convert-shard-to-mpi` is not used: in LLVM 22 it sizes the
    copy of a dynamic dimension with `memref.dim` of index `kDynamic` and
    splits a new communicator on every call.
  }];
  let dependentDialects = ["::mlir::bufferization::BufferizationDialect",
                           "::mlir::DLTIDialect",
                           "::mlir::linalg::LinalgDialect",
                           "::mlir::memref::MemRefDialect",
                           "::mlir::mpi::MPIDialect",
                           "::mlir::tensor::TensorDialect"];
}

def AttnConvertMPIToLLVM : Pass<"attn-convert-mpi-to-llvm", "ModuleOp"> {
  let summary = "MPI dialect ops to LLVM calls before bufferization ends";
  let description = [{
    Converts the `mpi` ops alone to LLVM (upstream's MPI patterns; the
    implementation from the module's `dlti.map`), their memrefs passed
    through `builtin.unrealized_conversion_cast`, which the final lowering
    reconciles. It runs before the buffer deallocation pipeline, which
    rejects `mpi.allreduce` (no memory effects declared). The OpenMPI
    global of `MPI_SUM`, which LLVM 22 misnames `ompi_mpi_sum`, is renamed
    `ompi_mpi_op_sum` (mpi.h).
  }];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
}

#endif // ATTN_CONVERSION_PASSES_TD
