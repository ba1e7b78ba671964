//===- Compile.cpp - parse, transform and compile attn IR from C ----------===//

#include "attn-c/Compile.h"

#include "attn/Compile/Compile.h"

#include "mlir/CAPI/IR.h"
#include "mlir/CAPI/Support.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"

#include "llvm/Support/Path.h"

#include <dlfcn.h>

using namespace mlir;

namespace {
/// Hands the diagnostics emitted while it lives to an AttnStringCallback
/// (none installed for a NULL callback).
class CallbackDiagnostics {
public:
  CallbackDiagnostics(MLIRContext *context, AttnStringCallback callback,
                      void *userData)
      : callback(callback), userData(userData) {
    if (callback)
      handler.emplace(context, [this](Diagnostic &diagnostic) {
        report(diagnostic);
        return success();
      });
  }

  /// Passes `message` on as it is.
  void report(StringRef message) const {
    if (callback)
      callback(wrap(message), userData);
  }

private:
  static void print(const Diagnostic &diagnostic, raw_ostream &os) {
    if (auto fileLoc =
            diagnostic.getLocation()->findInstanceOf<FileLineColLoc>())
      os << fileLoc.getFilename().getValue() << ":" << fileLoc.getLine() << ":"
         << fileLoc.getColumn() << ": ";
    os << getSeverityName(diagnostic.getSeverity()) << ": " << diagnostic;
  }

  static StringRef getSeverityName(DiagnosticSeverity severity) {
    switch (severity) {
    case DiagnosticSeverity::Error:
      return "error";
    case DiagnosticSeverity::Warning:
      return "warning";
    case DiagnosticSeverity::Note:
      return "note";
    case DiagnosticSeverity::Remark:
      return "remark";
    }
    llvm_unreachable("unknown diagnostic severity");
  }

  void report(const Diagnostic &diagnostic) const {
    std::string message;
    llvm::raw_string_ostream os(message);
    print(diagnostic, os);
    for (const Diagnostic &note : diagnostic.getNotes()) {
      os << "\n";
      print(note, os);
    }
    report(message);
  }

  AttnStringCallback callback;
  void *userData;
  std::optional<ScopedDiagnosticHandler> handler;
};
} // namespace

MlirModule attnParseModule(MlirContext context, MlirStringRef source,
                           MlirStringRef sourceName,
                           AttnStringCallback callback, void *userData) {
  CallbackDiagnostics diagnostics(unwrap(context), callback, userData);
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(
      unwrap(source), ParserConfig(unwrap(context)), unwrap(sourceName));
  return wrap(module.release());
}

MlirLogicalResult attnRunPassPipeline(MlirModule module, MlirStringRef pipeline,
                                      AttnStringCallback callback,
                                      void *userData) {
  ModuleOp moduleOp = unwrap(module);
  CallbackDiagnostics diagnostics(moduleOp.getContext(), callback, userData);
  PassManager pm(moduleOp.getContext());
  std::string error;
  llvm::raw_string_ostream errorStream(error);
  if (failed(parsePassPipeline(unwrap(pipeline), pm, errorStream))) {
    diagnostics.report(error);
    return mlirLogicalResultFailure();
  }
  return wrap(pm.run(moduleOp));
}

AttnCompileOptions attnCompileOptionsGetDefault(void) {
  // Static: the returned strings point into it.
  static const attn::CompileOptions defaults;
  return {AttnTargetCPU,
          AttnOutputSharedLibrary,
          wrap(StringRef(defaults.cpu)),
          defaults.queryTileRows,
          defaults.kvTile,
          defaults.decodeItems,
          wrap(StringRef(defaults.gpuChip)),
          wrap(StringRef(defaults.gpuFeatures)),
          defaults.gpuSMCount,
          defaults.fuse,
          defaults.runtimeChecks,
          mlirStringRefCreate(nullptr, 0),
          wrap(StringRef(defaults.int8Dot)),
          defaults.int8MaxRows,
          wrap(StringRef(defaults.gpuGPTQGemv)),
          defaults.abiChecks,
          defaults.sanitizeAddress};
}

/// The folder of this library: libattn_cuda_runtime is built and installed
/// beside it.
static std::string getRuntimeLibraryDir() {
  Dl_info info;
  if (!dladdr(reinterpret_cast<void *>(&getRuntimeLibraryDir), &info) ||
      !info.dli_fname)
    return "";
  return llvm::sys::path::parent_path(info.dli_fname).str();
}

static attn::CompileOptions toCompileOptions(const AttnCompileOptions &options) {
  attn::CompileOptions result;
  result.target = options.target == AttnTargetCUDA ? attn::CompileTarget::CUDA
                                                   : attn::CompileTarget::CPU;
  switch (options.output) {
  case AttnOutputSharedLibrary:
    result.output = attn::CompileOutput::SharedLibrary;
    break;
  case AttnOutputObject:
    result.output = attn::CompileOutput::Object;
    break;
  case AttnOutputLLVMIR:
    result.output = attn::CompileOutput::LLVMIR;
    break;
  case AttnOutputLLVMDialect:
    result.output = attn::CompileOutput::LLVMDialect;
    break;
  }
  result.cpu = unwrap(options.cpu).str();
  result.queryTileRows = options.queryTileRows;
  result.kvTile = options.kvTile;
  result.decodeItems = options.decodeItems;
  result.gpuChip = unwrap(options.gpuChip).str();
  result.gpuFeatures = unwrap(options.gpuFeatures).str();
  result.gpuSMCount = options.gpuSMCount;
  result.fuse = options.fuse;
  result.runtimeChecks = options.runtimeChecks;
  result.cc = unwrap(options.cc).str();
  result.int8Dot = unwrap(options.int8Dot).str();
  result.int8MaxRows = options.int8MaxRows;
  result.gpuGPTQGemv = unwrap(options.gpuGPTQGemv).str();
  result.abiChecks = options.abiChecks;
  result.sanitizeAddress = options.sanitizeAddress;
  result.runtimeLibraryDir = getRuntimeLibraryDir();
  return result;
}

MlirLogicalResult attnCompileModule(MlirModule module, MlirStringRef outputPath,
                                    const AttnCompileOptions *options,
                                    AttnStringCallback callback,
                                    void *userData) {
  ModuleOp moduleOp = unwrap(module);
  CallbackDiagnostics diagnostics(moduleOp.getContext(), callback, userData);
  OwningOpRef<ModuleOp> copy = moduleOp.clone();
  // Timing stays off: no report is printed.
  DefaultTimingManager timingManager;
  TimingScope timing = timingManager.getRootScope();
  return wrap(attn::compileModule(*copy, unwrap(outputPath),
                                  toCompileOptions(*options),
                                  timing));
}
