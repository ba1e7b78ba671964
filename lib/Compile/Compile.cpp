//===- Compile.cpp - attn IR -> object file or shared library -------------===//
//
// Lowering with the target's pipeline, translation to LLVM IR, LLVM O3 for
// the host and object emission; Link.cpp links the shared library.
//
//===----------------------------------------------------------------------===//

#include "attn/Compile/Compile.h"

#include "attn/Pipelines/Pipelines.h"

#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/SubtargetFeature.h"
#include "llvm/TargetParser/Triple.h"
#include "llvm/Transforms/IPO/MergeFunctions.h"
#include "llvm/Transforms/Instrumentation/AddressSanitizer.h"

using namespace mlir;
using namespace mlir::attn;

std::optional<CompileTarget> attn::parseCompileTarget(StringRef name) {
  if (name == "cpu")
    return CompileTarget::CPU;
  if (name == "cuda")
    return CompileTarget::CUDA;
  return std::nullopt;
}

/// LLVM's name and feature string of `cpu` ("native": this machine).
static std::pair<std::string, std::string> cpuNameAndFeatures(StringRef cpu) {
  if (cpu != "native")
    return {cpu.str(), ""};
  llvm::SubtargetFeatures subtarget;
  for (const auto &[name, enabled] : llvm::sys::getHostCPUFeatures())
    subtarget.AddFeature(name, enabled);
  return {llvm::sys::getHostCPUName().str(), subtarget.getString()};
}

/// Whether `cpu` runs the GGUF int8 kernel `kernel`.
static bool runsInt8Dot(StringRef cpu, StringRef kernel) {
  if (kernel == "none")
    return true;
  llvm::InitializeNativeTarget();
  llvm::Triple triple(llvm::sys::getProcessTriple());
  std::string error;
  const llvm::Target *target = llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return false;
  auto [name, features] = cpuNameAndFeatures(cpu);
  std::unique_ptr<llvm::MCSubtargetInfo> subtarget(
      target->createMCSubtargetInfo(triple, name, features));
  if (kernel == "avx512-vnni")
    return subtarget->checkFeatures("+avx512vnni,+avx512vl,+avx512bw");
  return kernel == "avx2" && subtarget->checkFeatures("+avx2");
}

/// The int8 kernel of `options`, "auto" resolved for its CPU.
static std::string int8DotKernel(const CompileOptions &options) {
  if (options.int8Dot != "auto")
    return options.int8Dot;
  for (StringRef kernel : {"avx512-vnni", "avx2"})
    if (runsInt8Dot(options.cpu, kernel))
      return kernel.str();
  return "none";
}

LogicalResult attn::verifyCompileOptions(const CompileOptions &options,
                                         Location loc) {
  if (options.sanitizeAddress && options.target != CompileTarget::CPU)
    return emitError(loc) << "--sanitize=address needs --target=cpu (the "
                             "instrumentation and its runtime are host-only)";
  if (options.target == CompileTarget::CPU && options.int8Dot != "auto" &&
      !runsInt8Dot(options.cpu, options.int8Dot))
    return emitError(loc) << "--int8-dot=" << options.int8Dot
                          << " is not a kernel the --mcpu target ("
                          << options.cpu
                          << ") can run (auto, avx512-vnni, avx2, none)";
  return success();
}

/// Whether the CPU has 512-bit vectors.
static bool hasAVX512(StringRef cpu) {
  if (cpu == "native")
    return llvm::sys::getHostCPUFeatures().lookup("avx512f");
  return cpu.contains("avx512") || cpu == "x86-64-v4" ||
         cpu.starts_with("skylake-avx512") || cpu.starts_with("icelake") ||
         cpu.starts_with("sapphirerapids") || cpu.starts_with("znver4") ||
         cpu.starts_with("znver5");
}

void attn::buildTargetPipeline(OpPassManager &pm,
                               const CompileOptions &options) {
  if (options.target == CompileTarget::CUDA) {
    NVVMPipelineOptions pipeline;
    pipeline.chip = options.gpuChip;
    pipeline.features = options.gpuFeatures;
    pipeline.smCount = options.gpuSMCount;
    pipeline.gptqGemv = options.gpuGPTQGemv;
    pipeline.fuse = options.fuse;
    pipeline.runtimeChecks = options.runtimeChecks;
    pipeline.abiChecks = options.abiChecks;
    buildLowerToNVVMPipeline(pm, pipeline);
    return;
  }
  CPUPipelineOptions pipeline;
  pipeline.queryTileRows = options.queryTileRows;
  pipeline.kvTile = options.kvTile;
  pipeline.decodeItems = options.decodeItems;
  pipeline.vectorLanes = hasAVX512(options.cpu) ? 16 : 8;
  pipeline.int8Dot = int8DotKernel(options);
  pipeline.int8MaxRows = options.int8MaxRows;
  pipeline.fuse = options.fuse;
  pipeline.runtimeChecks = options.runtimeChecks;
  pipeline.abiChecks = options.abiChecks;
  buildLowerToCPUPipeline(pm, pipeline);
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

/// A target machine for the host triple and `cpu`.
static std::unique_ptr<llvm::TargetMachine>
createHostMachine(StringRef cpu, Location loc) {
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  llvm::Triple triple(llvm::sys::getProcessTriple());
  std::string error;
  const llvm::Target *target = llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target) {
    emitError(loc) << error;
    return nullptr;
  }
  auto [cpuName, features] = cpuNameAndFeatures(cpu);
  std::unique_ptr<llvm::TargetMachine> machine(target->createTargetMachine(
      triple, cpuName, features, llvm::TargetOptions(), llvm::Reloc::PIC_,
      std::nullopt, llvm::CodeGenOptLevel::Aggressive));
  if (!machine)
    emitError(loc) << "cannot create a target machine for " << cpu;
  return machine;
}

/// Optimises `module` for the host and writes it to `path` as LLVM IR text
/// or an object file.
static LogicalResult emitLLVMModule(llvm::Module &module, StringRef path,
                                    const CompileOptions &options,
                                    Location loc, TimingScope &timing) {
  std::unique_ptr<llvm::TargetMachine> machine =
      createHostMachine(options.cpu, loc);
  if (!machine)
    return failure();
  module.setTargetTriple(machine->getTargetTriple());
  module.setDataLayout(machine->createDataLayout());
  TimingScope optimizeTiming = timing.nest("LLVM O3");
  optimize(module, *machine);
  optimizeTiming.stop();
  if (options.sanitizeAddress) {
    TimingScope sanitizeTiming = timing.nest("AddressSanitizer");
    addressSanitize(module, *machine);
  }
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_None);
  if (ec)
    return emitError(loc) << "cannot write " << path << ": " << ec.message();
  if (options.output == CompileOutput::LLVMIR) {
    TimingScope writeTiming = timing.nest("Write LLVM IR");
    module.print(os, nullptr);
    return success();
  }
  TimingScope codegenTiming = timing.nest("LLVM code generation (object)");
  llvm::legacy::PassManager codegen;
  if (machine->addPassesToEmitFile(codegen, os, nullptr,
                                   llvm::CodeGenFileType::ObjectFile))
    return emitError(loc) << "the target cannot emit object files";
  codegen.run(module);
  return success();
}

/// Whether the module calls MPI (a sharded layer's collectives).
static bool callsMPI(const llvm::Module &module) {
  return llvm::any_of(module.functions(), [](const llvm::Function &function) {
    return function.isDeclaration() && function.getName().starts_with("MPI_");
  });
}

/// Writes the lowered `module` (LLVM dialect) as `options.output`.
static LogicalResult emitLoweredModule(ModuleOp module, StringRef outputPath,
                                       const CompileOptions &options,
                                       TimingScope &timing) {
  Location loc = module.getLoc();
  if (options.output == CompileOutput::LLVMDialect) {
    TimingScope writeTiming = timing.nest("Write MLIR");
    std::error_code ec;
    llvm::raw_fd_ostream os(outputPath, ec);
    if (ec)
      return emitError(loc) << "cannot write " << outputPath << ": "
                            << ec.message();
    module.print(os);
    return success();
  }

  TimingScope translateTiming = timing.nest("Translate to LLVM IR");
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(module, llvmContext);
  if (!llvmModule)
    return emitError(loc) << "translation to LLVM IR failed";
  translateTiming.stop();
  if (options.output != CompileOutput::SharedLibrary)
    return emitLLVMModule(*llvmModule, outputPath, options, loc, timing);

  SmallString<128> object;
  if (std::error_code ec =
          llvm::sys::fs::createTemporaryFile("attn-compile", "o", object))
    return emitError(loc) << "cannot create a temporary file: " << ec.message();
  llvm::FileRemover removeObject(object);
  if (failed(emitLLVMModule(*llvmModule, object, options, loc, timing)))
    return failure();
  TimingScope linkTiming = timing.nest("Link shared library");
  return linkSharedLibrary(object, outputPath, options, callsMPI(*llvmModule),
                           loc);
}

LogicalResult attn::compileModule(
    ModuleOp module, StringRef outputPath, const CompileOptions &options,
    TimingScope &timing,
    function_ref<LogicalResult(PassManager &)> configurePassManager) {
  if (failed(verifyCompileOptions(options, module.getLoc())))
    return failure();
  PassManager pm(module.getContext());
  if (configurePassManager && failed(configurePassManager(pm)))
    return failure();
  TimingScope pipelineTiming = timing.nest("Lowering pipeline");
  pm.enableTiming(pipelineTiming);
  buildTargetPipeline(pm, options);
  if (failed(pm.run(module)))
    return emitError(module.getLoc()) << "lowering failed";
  pipelineTiming.stop();
  return emitLoweredModule(module, outputPath, options, timing);
}
