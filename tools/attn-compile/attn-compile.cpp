//===- attn-compile.cpp - attn IR -> shared library -----------------------===//
//
// Ahead-of-time driver over attn/Compile (lowering, LLVM O3 for the host,
// object emission, linking with the configured C compiler). A CPU library
// needs libc, libm and (for threads) libomp; a CUDA library embeds its
// kernels and needs libattn_cuda_runtime (found in lib/ beside this tool's
// bin/, in the build and in an install) and the CUDA driver; neither needs
// MLIR.
//
//===----------------------------------------------------------------------===//

#include "attn/Compile/Compile.h"
#include "attn/InitAll.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Support/Timing.h"

#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"

using namespace mlir;
namespace cl = llvm::cl;

static cl::opt<std::string> inputFile(cl::Positional, cl::desc("<input.mlir>"),
                                      cl::init("-"));
static cl::opt<std::string> outputFile("o", cl::desc("Output file"),
                                       cl::value_desc("file"), cl::Required);
static cl::opt<std::string>
    target("target",
           cl::desc("cpu (this machine's CPU) or cuda (NVIDIA GPU kernels "
                    "embedded in host code taking device pointers)"),
           cl::init("cpu"));
static cl::opt<std::string> gpuChip("gpu-chip",
                                    cl::desc("GPU architecture for --target=cuda"),
                                    cl::init("sm_90a"));
static cl::opt<std::string>
    gpuFeatures("gpu-features", cl::desc("PTX features for --target=cuda"),
                cl::init("+ptx84"));
static cl::opt<int64_t>
    gpuSMCount("gpu-sm-count",
               cl::desc("Multiprocessors of the target GPU (attention splits)"),
               cl::init(132));
static cl::opt<std::string> gpuGPTQGemv(
    "gpu-gptq-gemv",
    cl::desc("The GEMV of GPTQ projections at decode sizes for "
             "--target=cuda: tma-ring (per-warp TMA rings) or streaming "
             "(words loaded straight into registers)"),
    cl::init("tma-ring"));
static cl::opt<std::string>
    emit("emit", cl::desc("What to write: so, obj, llvm (LLVM IR), mlir "
                          "(LLVM dialect)"),
         cl::init("so"));
static cl::opt<std::string>
    mcpu("mcpu",
         cl::desc("Target CPU: 'native' (this machine, the default: the "
                  "library runs where it is built), or an LLVM CPU name such "
                  "as x86-64-v3 (any AVX2 machine)"),
         cl::init("native"));
static cl::opt<int64_t> queryTileRows("q-tile-rows",
                                      cl::desc("Flash-attention query tile rows"),
                                      cl::init(128));
static cl::opt<int64_t> kvTile("kv-tile",
                               cl::desc("Keys per tile over explicit K/V"),
                               cl::init(128));
static cl::opt<int64_t> decodeItems(
    "decode-items",
    cl::desc("Work items of the CPU split decode ((sequence, key chunk) "
             "pairs; 0: one per sequence and kv head)"),
    cl::init(64));
static cl::opt<std::string> int8Dot(
    "int8-dot",
    cl::desc("Integer dot products of GGUF projections with few "
             "rows: 'auto' (avx512-vnni where the --mcpu target has "
             "AVX512-VNNI, else avx2 where it has AVX2, else none), "
             "avx512-vnni, avx2 or none (weights decoded to f32 at every "
             "row count)"),
    cl::init("auto"));
static cl::opt<int64_t> int8MaxRows(
    "int8-max-rows",
    cl::desc("Rows up to which GGUF projections quantise their "
             "activations (Q8_K, Q8_0) and use the --int8-dot kernel"),
    cl::init(64));
static cl::opt<bool>
    noFuse("no-fuse", cl::desc("Skip the fusion passes (attn-fuse-*)"),
           cl::init(false));
static cl::opt<bool> noRuntimeChecks(
    "no-runtime-checks",
    cl::desc("Do not check the run-time inputs (layer indices, index tensors) "
             "at the entry points (the status is then always 0)"),
    cl::init(false));
static cl::opt<bool> abiChecks(
    "abi-checks",
    cl::desc("Debug mode: the entry points also check the sizes of the "
             "tensor arguments against the function's types (status 8)"),
    cl::init(false));
static cl::opt<std::string> sanitize(
    "sanitize",
    cl::desc("Instrument the generated code: 'address' (AddressSanitizer; "
             "--target=cpu only). The library then needs the shared ASan "
             "runtime loaded first, e.g. LD_PRELOAD=$(clang "
             "-print-file-name=libclang_rt.asan-x86_64.so)"),
    cl::init(""));
static cl::opt<bool> timing(
    "timing",
    cl::desc("Print to stderr where the compile time goes: parsing, each "
             "pass of the lowering pipeline (for --target=cuda including "
             "gpu-module-to-binary, i.e. LLVM for the kernels and ptxas), "
             "LLVM IR translation, LLVM O3, object emission, linking (as "
             "--mlir-timing, whose display and format options apply)"),
    cl::init(false));
static cl::opt<std::string>
    cc("cc",
       cl::desc("C compiler driver that links the shared library (default: "
                "$ATTN_CC, else the C compiler attn-mlir was built with)"),
       cl::init(""));

static LogicalResult fail(const Twine &message) {
  llvm::errs() << "attn-compile: " << message << "\n";
  return failure();
}

/// lib/ beside this tool's bin/: where libattn_cuda_runtime is built and
/// installed.
static std::string getRuntimeLibraryDir(const char *argv0) {
  std::string exe = llvm::sys::fs::getMainExecutable(
      argv0, reinterpret_cast<void *>(&getRuntimeLibraryDir));
  SmallString<256> dir(
      llvm::sys::path::parent_path(llvm::sys::path::parent_path(exe)));
  llvm::sys::path::append(dir, "lib");
  return std::string(dir);
}

/// The command-line options as attn::CompileOptions.
static FailureOr<attn::CompileOptions> getCompileOptions(const char *argv0) {
  attn::CompileOptions options;
  std::optional<attn::CompileTarget> compileTarget =
      attn::parseCompileTarget(target);
  if (!compileTarget)
    return fail("unsupported target '" + target + "' (available: cpu, cuda)");
  options.target = *compileTarget;
  std::optional<attn::CompileOutput> output =
      llvm::StringSwitch<std::optional<attn::CompileOutput>>(emit)
          .Case("so", attn::CompileOutput::SharedLibrary)
          .Case("obj", attn::CompileOutput::Object)
          .Case("llvm", attn::CompileOutput::LLVMIR)
          .Case("mlir", attn::CompileOutput::LLVMDialect)
          .Default(std::nullopt);
  if (!output)
    return fail("--emit must be so, obj, llvm or mlir");
  options.output = *output;
  if (!sanitize.empty() && sanitize != "address")
    return fail("unsupported --sanitize='" + sanitize +
                "' (available: address)");
  options.sanitizeAddress = sanitize == "address";
  options.cpu = mcpu;
  options.queryTileRows = queryTileRows;
  options.kvTile = kvTile;
  options.decodeItems = decodeItems;
  options.int8Dot = int8Dot;
  options.int8MaxRows = int8MaxRows;
  options.gpuChip = gpuChip;
  options.gpuFeatures = gpuFeatures;
  options.gpuSMCount = gpuSMCount;
  options.gpuGPTQGemv = gpuGPTQGemv;
  options.fuse = !noFuse;
  options.runtimeChecks = !noRuntimeChecks;
  options.abiChecks = abiChecks;
  options.cc = cc;
  options.runtimeLibraryDir = getRuntimeLibraryDir(argv0);
  return options;
}

static LogicalResult compile(const attn::CompileOptions &options,
                             TimingScope &timing) {
  DialectRegistry registry;
  attn::registerAllDialects(registry);
  MLIRContext context(registry);

  TimingScope parseTiming = timing.nest("Parse input");
  std::string error;
  auto file = openInputFile(inputFile, &error);
  if (!file)
    return fail(error);
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(std::move(file), llvm::SMLoc());
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, &context);
  if (!module)
    return failure();
  parseTiming.stop();

  return attn::compileModule(*module, outputFile, options, timing,
                             [](PassManager &pm) {
                               return applyPassManagerCLOptions(pm);
                             });
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  attn::registerAllPasses();
  registerPassManagerCLOptions();
  registerDefaultTimingManagerCLOptions();
  cl::ParseCommandLineOptions(argc, argv,
                              "attn-compile: attn IR -> shared library\n");
  FailureOr<attn::CompileOptions> options = getCompileOptions(argv[0]);
  if (failed(options))
    return 1;
  // The report goes to stderr when `timingManager` is destroyed, after the
  // root scope has stopped.
  DefaultTimingManager timingManager;
  applyDefaultTimingManagerCLOptions(timingManager);
  if (timing)
    timingManager.setEnabled(true);
  TimingScope rootTiming = timingManager.getRootScope();
  return failed(compile(*options, rootTiming)) ? 1 : 0;
}
