//===- attn-compile.cpp - attn IR -> shared library -----------------------===//
//
// Ahead-of-time driver: lowers attn IR with the target's pipeline, translates
// to LLVM IR, optimises for the host CPU, emits an object file and links a
// shared library whose entry points follow docs/ABI.md. A CPU library needs
// libc, libm and (for threads) libomp; a CUDA library embeds its kernels and
// needs libattn_cuda_runtime (found beside it or in the build) and the CUDA
// driver; neither needs MLIR.
//
//===----------------------------------------------------------------------===//

#include "attn/Conversion/Passes.h"
#include "attn/Dialect/Attn/IR/AttnDialect.h"
#include "attn/Dialect/Attn/Transforms/Passes.h"
#include "attn/Pipelines/Pipelines.h"
#include "attn/Target/CPU/Transforms/Passes.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Support/Timing.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/SubtargetFeature.h"
#include "llvm/TargetParser/Triple.h"
#include "llvm/Transforms/IPO/MergeFunctions.h"
#include "llvm/Transforms/Instrumentation/AddressSanitizer.h"

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
                cl::init("+ptx80"));
static cl::opt<int64_t>
    gpuSMCount("gpu-sm-count",
               cl::desc("Multiprocessors of the target GPU (attention splits)"),
               cl::init(132));
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
             "runtime loaded first, e.g. LD_PRELOAD=$(clang-22 "
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
    linker("linker", cl::desc("Compiler driver used to link the library"),
           cl::init("clang-22"));

static LogicalResult fail(const Twine &message) {
  llvm::errs() << "attn-compile: " << message << "\n";
  return failure();
}

/// Whether the --mcpu target has 512-bit vectors.
static bool targetHasAVX512() {
  if (mcpu == "native") {
    llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
    return features.lookup("avx512f");
  }
  return StringRef(mcpu).contains("avx512") || mcpu == "x86-64-v4" ||
         StringRef(mcpu).starts_with("skylake-avx512") ||
         StringRef(mcpu).starts_with("icelake") ||
         StringRef(mcpu).starts_with("sapphirerapids") ||
         StringRef(mcpu).starts_with("znver4") ||
         StringRef(mcpu).starts_with("znver5");
}

/// Runs the module passes that `addPasses` adds, with the tuning of MLIR's
/// makeOptimizingTransformer (loop and SLP vectorisation, unrolling).
static void runModulePasses(
    llvm::Module &module, llvm::TargetMachine &machine,
    llvm::function_ref<void(llvm::PassBuilder &, llvm::ModulePassManager &)>
        addPasses) {
  llvm::PipelineTuningOptions tuning;
  tuning.LoopUnrolling = true;
  tuning.LoopInterleaving = true;
  tuning.LoopVectorization = true;
  tuning.SLPVectorization = true;
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PassBuilder builder(&machine, tuning);
  builder.registerModuleAnalyses(mam);
  builder.registerCGSCCAnalyses(cgam);
  builder.registerFunctionAnalyses(fam);
  builder.registerLoopAnalyses(lam);
  builder.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::ModulePassManager passes;
  addPasses(builder, passes);
  passes.run(module, mam);
}

/// LLVM O3, after merging identical functions: entry points of one layer
/// lowered alike share their OpenMP bodies (the attention kernel of a fused
/// and an unfused layer), which O3 and code generation then handle once.
static void optimize(llvm::Module &module, llvm::TargetMachine &machine) {
  runModulePasses(module, machine,
                  [](llvm::PassBuilder &builder, llvm::ModulePassManager &mpm) {
                    mpm.addPass(llvm::MergeFunctionsPass());
                    mpm.addPass(builder.buildPerModuleDefaultPipeline(
                        llvm::OptimizationLevel::O3));
                  });
}

/// Instruments the optimised module with AddressSanitizer, as clang
/// -fsanitize=address does after its own optimisation pipeline: every
/// definition gets `sanitize_address`, then the module pass adds the shadow
/// checks and the module constructor that registers with the runtime. The
/// OpenMP outlined bodies are definitions of this module, so they are checked
/// too; libomp itself is not instrumented.
static void addressSanitize(llvm::Module &module, llvm::TargetMachine &machine) {
  for (llvm::Function &function : module)
    if (!function.isDeclaration())
      function.addFnAttr(llvm::Attribute::SanitizeAddress);
  runModulePasses(module, machine,
                  [](llvm::PassBuilder &, llvm::ModulePassManager &mpm) {
                    mpm.addPass(llvm::AddressSanitizerPass(
                        llvm::AddressSanitizerOptions()));
                  });
}

static LogicalResult emitObject(llvm::Module &module, StringRef path,
                                TimingScope &timing) {
  std::string error;
  llvm::Triple triple("x86_64-unknown-linux-gnu");
  const llvm::Target *llvmTarget = llvm::TargetRegistry::lookupTarget(triple, error);
  if (!llvmTarget)
    return fail(error);
  llvm::TargetOptions options;
  std::string cpu = mcpu, features;
  if (mcpu == "native") {
    cpu = llvm::sys::getHostCPUName().str();
    llvm::SubtargetFeatures subtarget;
    for (const auto &[name, enabled] : llvm::sys::getHostCPUFeatures())
      subtarget.AddFeature(name, enabled);
    features = subtarget.getString();
  }
  std::unique_ptr<llvm::TargetMachine> machine(llvmTarget->createTargetMachine(
      triple, cpu, features, options, llvm::Reloc::PIC_, std::nullopt,
      llvm::CodeGenOptLevel::Aggressive));
  if (!machine)
    return fail("cannot create a target machine for " + mcpu);
  module.setTargetTriple(triple);
  module.setDataLayout(machine->createDataLayout());
  TimingScope optimizeTiming = timing.nest("LLVM O3");
  optimize(module, *machine);
  optimizeTiming.stop();
  if (sanitize == "address") {
    TimingScope sanitizeTiming = timing.nest("AddressSanitizer");
    addressSanitize(module, *machine);
  }
  if (emit == "llvm") {
    TimingScope writeTiming = timing.nest("Write LLVM IR");
    std::error_code ec;
    llvm::raw_fd_ostream os(path, ec);
    if (ec)
      return fail("cannot write " + path + ": " + ec.message());
    module.print(os, nullptr);
    return success();
  }
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_None);
  if (ec)
    return fail("cannot write " + path + ": " + ec.message());
  TimingScope codegenTiming = timing.nest("LLVM code generation (object)");
  llvm::legacy::PassManager codegen;
  if (machine->addPassesToEmitFile(codegen, os, nullptr,
                                   llvm::CodeGenFileType::ObjectFile))
    return fail("the target cannot emit object files");
  codegen.run(module);
  return success();
}

/// The folder of libattn_cuda_runtime: `lib/` beside this tool's `bin/`.
static std::string cudaRuntimeDir(const char *argv0) {
  std::string exe = llvm::sys::fs::getMainExecutable(
      argv0, reinterpret_cast<void *>(&cudaRuntimeDir));
  SmallString<256> dir(llvm::sys::path::parent_path(
      llvm::sys::path::parent_path(exe)));
  llvm::sys::path::append(dir, "lib");
  return std::string(dir);
}

static const char *programName = "attn-compile";

/// Whether the module calls MPI (a sharded layer's collectives).
static bool callsMPI(const llvm::Module &module) {
  return llvm::any_of(module.functions(), [](const llvm::Function &function) {
    return function.isDeclaration() && function.getName().starts_with("MPI_");
  });
}

static LogicalResult linkSharedLibrary(StringRef object, StringRef output,
                                       bool linkMPI) {
  llvm::ErrorOr<std::string> driver = llvm::sys::findProgramByName(linker);
  if (!driver)
    return fail("cannot find the linker driver '" + linker + "'");
  SmallVector<std::string> flags;
  if (target == "cuda") {
    std::string runtimeDir = cudaRuntimeDir(programName);
    SmallString<256> runtime(runtimeDir);
    llvm::sys::path::append(runtime, "libattn_cuda_runtime.so");
    if (!llvm::sys::fs::exists(runtime))
      return fail("cannot find " + runtime +
                  " (build the CUDA runtime: it needs /usr/local/cuda)");
    // $ORIGIN first: a library shipped with the runtime beside it finds it.
    flags = {"-L" + runtimeDir, "-lattn_cuda_runtime",
             "-Wl,-rpath,$ORIGIN:" + runtimeDir};
  } else {
    flags = {"-L/usr/lib/llvm-22/lib", "-lomp", "-lm",
             "-Wl,-rpath,/usr/lib/llvm-22/lib"};
    // The shared ASan runtime: DT_NEEDED libclang_rt.asan-x86_64.so, found
    // through the rpath. It must still come first in the process (LD_PRELOAD)
    // when the host program is not itself instrumented; with the rpath,
    // loading without it fails with ASan's own message saying so.
    if (sanitize == "address")
      flags.append({"-fsanitize=address", "-shared-libasan",
                    "-Wl,-rpath,/usr/lib/llvm-22/lib/clang/22/lib/linux"});
    // Debian's OpenMPI (libopenmpi-dev), as `mpicc -showme:link` gives it.
    if (linkMPI)
      flags.append({"-L/usr/lib/x86_64-linux-gnu/openmpi/lib", "-lmpi"});
  }
  SmallVector<StringRef> args = {*driver, "-shared", "-o", output, object};
  for (const std::string &flag : flags)
    args.push_back(flag);
  std::string message;
  int rc = llvm::sys::ExecuteAndWait(*driver, args, std::nullopt, {}, 0, 0,
                                     &message);
  if (rc != 0)
    return fail("linking failed (" + Twine(rc) + ") " + message);
  return success();
}

/// Runs the --target's pipeline (with the MLIR pass-manager options) on
/// `module`: attn IR -> LLVM dialect.
static LogicalResult lower(ModuleOp module, TimingScope &timing) {
  PassManager pm(module.getContext());
  if (failed(applyPassManagerCLOptions(pm)))
    return fail("invalid pass manager options");
  TimingScope pipelineTiming = timing.nest("Lowering pipeline");
  pm.enableTiming(pipelineTiming);
  if (target == "cuda") {
    attn::NVVMPipelineOptions options;
    options.chip = gpuChip;
    options.features = gpuFeatures;
    options.smCount = gpuSMCount;
    options.fuse = !noFuse;
    options.runtimeChecks = !noRuntimeChecks;
    options.abiChecks = abiChecks;
    attn::buildLowerToNVVMPipeline(pm, options);
  } else {
    attn::CPUPipelineOptions options;
    options.queryTileRows = queryTileRows;
    options.kvTile = kvTile;
    options.decodeItems = decodeItems;
    options.vectorLanes = targetHasAVX512() ? 16 : 8;
    options.fuse = !noFuse;
    options.runtimeChecks = !noRuntimeChecks;
    options.abiChecks = abiChecks;
    attn::buildLowerToCPUPipeline(pm, options);
  }
  if (failed(pm.run(module)))
    return fail("lowering failed");
  return success();
}

static LogicalResult compile(TimingScope &timing) {
  if (target != "cpu" && target != "cuda")
    return fail("unsupported target '" + target + "' (available: cpu, cuda)");
  if (emit != "so" && emit != "obj" && emit != "llvm" && emit != "mlir")
    return fail("--emit must be so, obj, llvm or mlir");
  if (!sanitize.empty() && sanitize != "address")
    return fail("unsupported --sanitize='" + sanitize + "' (available: address)");
  if (sanitize == "address" && target != "cpu")
    return fail("--sanitize=address needs --target=cpu (the instrumentation "
                "and its runtime are host-only)");

  DialectRegistry registry;
  registerAllDialects(registry);
  registerAllExtensions(registry);
  registerAllToLLVMIRTranslations(registry);
  registry.insert<attn::AttnDialect>();
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

  if (failed(lower(*module, timing)))
    return failure();

  if (emit == "mlir") {
    TimingScope writeTiming = timing.nest("Write MLIR");
    std::error_code ec;
    llvm::raw_fd_ostream os(outputFile, ec);
    if (ec)
      return fail("cannot write " + outputFile + ": " + ec.message());
    module->print(os);
    return success();
  }

  TimingScope translateTiming = timing.nest("Translate to LLVM IR");
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(*module, llvmContext);
  if (!llvmModule)
    return fail("translation to LLVM IR failed");
  translateTiming.stop();
  if (emit == "llvm" || emit == "obj")
    return emitObject(*llvmModule, outputFile, timing);

  SmallString<128> object;
  if (std::error_code ec =
          llvm::sys::fs::createTemporaryFile("attn-compile", "o", object))
    return fail("cannot create a temporary file: " + ec.message());
  llvm::FileRemover removeObject(object);
  if (failed(emitObject(*llvmModule, object, timing)))
    return failure();
  TimingScope linkTiming = timing.nest("Link shared library");
  return linkSharedLibrary(object, outputFile, callsMPI(*llvmModule));
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  programName = argv[0];
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  registerAllPasses();
  attn::registerAttnPasses();
  attn::registerAttnConversionPasses();
  attn::registerAttnCPUPasses();
  registerPassManagerCLOptions();
  registerDefaultTimingManagerCLOptions();
  cl::ParseCommandLineOptions(argc, argv,
                              "attn-compile: attn IR -> shared library\n");
  // The report goes to stderr when `timingManager` is destroyed, after the
  // root scope has stopped.
  DefaultTimingManager timingManager;
  applyDefaultTimingManagerCLOptions(timingManager);
  if (timing)
    timingManager.setEnabled(true);
  TimingScope rootTiming = timingManager.getRootScope();
  return failed(compile(rootTiming)) ? 1 : 0;
}
