/*===- Compile.h - parse, transform and compile attn IR -----------*- C -*-===*\
|*                                                                            *|
|* The attn compiler as a library: parse and verify a module, run a pass      *|
|* pipeline on it, compile it to an object file or a shared library whose     *|
|* entry points follow docs/ABI.md (what attn-compile does).                  *|
|*                                                                            *|
|* Diagnostics: every entry point taking an AttnStringCallback hands each     *|
|* diagnostic emitted during the call to it, one call per diagnostic, as      *|
|* "file:line:col: error: message" (notes attached follow on their own        *|
|* lines); the string is only valid during the call. With a NULL callback     *|
|* the diagnostics go to the context's handlers (by default: stderr).         *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#ifndef ATTN_C_COMPILE_H
#define ATTN_C_COMPILE_H

#include "mlir-c/IR.h"
#include "mlir-c/Support.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Receives one diagnostic (or a pipeline parse error) and the user data
/// given with it.
typedef void (*AttnStringCallback)(MlirStringRef message, void *userData);

/// Parses `source` (named `sourceName` in locations) into a module of
/// `context` and verifies it. Returns a null module (mlirModuleIsNull) on
/// failure, after reporting why to `callback`. The caller owns the module
/// (mlirModuleDestroy). The context needs the dialects of the source, e.g.
/// from attnRegisterAllDialects.
MLIR_CAPI_EXPORTED MlirModule attnParseModule(MlirContext context,
                                              MlirStringRef source,
                                              MlirStringRef sourceName,
                                              AttnStringCallback callback,
                                              void *userData);

/// Runs `pipeline` on `module` in place and verifies the result. The
/// pipeline is a comma-separated list of passes on the module, as inside
/// attn-opt's --pass-pipeline='builtin.module(...)', e.g.
/// "attn-lower-to-cpu{fuse=false}" or "attn-expand-composite,canonicalize";
/// the passes must be registered (attnRegisterAllPasses). A pipeline that
/// does not parse or a failing pass is reported to `callback`.
MLIR_CAPI_EXPORTED MlirLogicalResult
attnRunPassPipeline(MlirModule module, MlirStringRef pipeline,
                    AttnStringCallback callback, void *userData);

typedef enum AttnTarget {
  /// This machine's CPU (OpenMP threads).
  AttnTargetCPU,
  /// NVIDIA GPU kernels embedded in host code that takes device pointers;
  /// the library needs libattn_cuda_runtime (found beside libAttnCAPI).
  AttnTargetCUDA,
} AttnTarget;

typedef enum AttnOutput {
  AttnOutputSharedLibrary,
  AttnOutputObject,
  /// LLVM IR text, optimised for the host.
  AttnOutputLLVMIR,
  /// The LLVM dialect that the LLVM IR is translated from.
  AttnOutputLLVMDialect,
} AttnOutput;

/// The options of attn-compile. Start from attnCompileOptionsGetDefault():
/// later versions may add fields.
typedef struct AttnCompileOptions {
  AttnTarget target;
  AttnOutput output;
  /// Host CPU: "native" (this machine) or an LLVM CPU name (x86-64-v3).
  MlirStringRef cpu;
  /// CPU tuning: flash-attention query tile rows, keys per tile, split
  /// decode work items.
  int64_t queryTileRows;
  int64_t kvTile;
  int64_t decodeItems;
  /// CUDA: GPU architecture, PTX features, multiprocessors.
  MlirStringRef gpuChip;
  MlirStringRef gpuFeatures;
  int64_t gpuSMCount;
  /// Run the attn fusion passes.
  bool fuse;
  /// Check run-time layer indices at the entry points.
  bool runtimeChecks;
  /// C compiler driver that links the shared library. Empty: $ATTN_CC, else
  /// the compiler attn-mlir was built with.
  MlirStringRef cc;
  /// CPU: the GGUF int8 dot kernel ("auto": the best `cpu` runs;
  /// "avx512-vnni", "avx2" or "none") and the rows up to which it serves.
  MlirStringRef int8Dot;
  int64_t int8MaxRows;
  /// CUDA: the GEMV of GPTQ projections, "tma-ring" or "streaming".
  MlirStringRef gpuGPTQGemv;
  /// Entry points also check tensor sizes against the function's types.
  bool abiChecks;
  /// Instrument the generated code with AddressSanitizer (CPU only; the
  /// program that loads the library must run the ASan runtime).
  bool sanitizeAddress;
} AttnCompileOptions;

/// attn-compile's defaults: CPU, shared library, native CPU, sm_90a. Fields
/// appended in later versions keep these first ones where they are.
MLIR_CAPI_EXPORTED AttnCompileOptions attnCompileOptionsGetDefault(void);

/// Compiles `module` (attn IR; left unchanged: a copy is lowered) as
/// `options` say and writes the result to `outputPath`. Failures (lowering,
/// linking) are reported to `callback`.
MLIR_CAPI_EXPORTED MlirLogicalResult
attnCompileModule(MlirModule module, MlirStringRef outputPath,
                  const AttnCompileOptions *options,
                  AttnStringCallback callback, void *userData);

#ifdef __cplusplus
}
#endif

#endif // ATTN_C_COMPILE_H
