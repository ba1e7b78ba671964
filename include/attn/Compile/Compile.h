//===- Compile.h - attn IR -> object file or shared library -----*- C++ -*-===//
//
// The ahead-of-time compiler behind attn-compile and the C API: lowers attn
// IR with the target's pipeline, translates to LLVM IR, optimises for the
// host, emits an object file and links a shared library whose entry points
// follow docs/ABI.md.
//
//===----------------------------------------------------------------------===//

#ifndef ATTN_COMPILE_COMPILE_H
#define ATTN_COMPILE_COMPILE_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/Timing.h"

#include <optional>
#include <string>

namespace mlir::attn {

enum class CompileTarget { CPU, CUDA };

/// "cpu" or "cuda"; std::nullopt for anything else.
std::optional<CompileTarget> parseCompileTarget(StringRef name);

enum class CompileOutput {
  SharedLibrary,
  Object,
  /// LLVM IR text, optimised for the host.
  LLVMIR,
  /// The LLVM dialect that the LLVM IR is translated from.
  LLVMDialect,
};

struct CompileOptions {
  CompileTarget target = CompileTarget::CPU;
  CompileOutput output = CompileOutput::SharedLibrary;
  /// Host CPU of the generated code: "native" (this machine) or an LLVM CPU
  /// name such as x86-64-v3.
  std::string cpu = "native";
  /// CPU pipeline tuning (CPUPipelineOptions).
  int64_t queryTileRows = 128;
  int64_t kvTile = 128;
  int64_t decodeItems = 64;
  /// The GGUF int8 kernel ("auto": the best `cpu` runs; avx512-vnni, avx2
  /// or none) and the rows up to which it serves.
  std::string int8Dot = "auto";
  int64_t int8MaxRows = 64;
  /// CUDA pipeline tuning (NVVMPipelineOptions).
  std::string gpuChip = "sm_90a";
  std::string gpuFeatures = "+ptx84";
  int64_t gpuSMCount = 132;
  /// The GEMV of GPTQ projections: tma-ring or streaming.
  std::string gpuGPTQGemv = "tma-ring";
  bool fuse = true;
  bool runtimeChecks = true;
  /// Entry points also check tensor sizes against the function's types.
  bool abiChecks = false;
  /// Instrument the generated code with AddressSanitizer (CPU only).
  bool sanitizeAddress = false;
  /// The C compiler driver that links shared libraries. Empty: $ATTN_CC,
  /// else the C compiler this project was configured with.
  std::string cc;
  /// The folder of libattn_cuda_runtime.so, which CUDA shared libraries
  /// link and find at run time (after their own folder).
  std::string runtimeLibraryDir;
};

/// Checks the combination of options; emits an error at `loc` if it is not
/// supported.
LogicalResult verifyCompileOptions(const CompileOptions &options, Location loc);

/// Adds the target's pipeline: attn IR -> LLVM dialect.
void buildTargetPipeline(OpPassManager &pm, const CompileOptions &options);

/// Lowers `module` in place and writes `options.output` to `outputPath`.
/// Errors are emitted as diagnostics at the module's location; nothing is
/// written on failure. `configurePassManager`, if given, adjusts the lowering
/// pass manager first (e.g. with the MLIR command-line options).
LogicalResult compileModule(
    ModuleOp module, StringRef outputPath, const CompileOptions &options,
    TimingScope &timing,
    function_ref<LogicalResult(PassManager &)> configurePassManager = nullptr);

/// Links `objectPath` into the shared library `outputPath` for
/// `options.target` (OpenMP, libm and optionally MPI and ASan for the CPU,
/// libattn_cuda_runtime for CUDA).
LogicalResult linkSharedLibrary(StringRef objectPath, StringRef outputPath,
                                const CompileOptions &options, bool linkMPI,
                                Location loc);

} // namespace mlir::attn

#endif // ATTN_COMPILE_COMPILE_H
