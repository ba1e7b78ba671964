//===- attn-fuzz.cpp - libFuzzer target: parse, verify, each pipeline -----===//
//
// Feeds arbitrary bytes to the MLIR parser with every dialect attn-opt
// registers, verifies the result, then runs on a fresh clone each of:
//   attn-expand-composite;
//   attn-expand-composite + the fusion passes;
//   attn-lower-to-cpu (the whole CPU pipeline, buildLowerToCPUPipeline);
//   convert-attn-to-gpu on the input as given, and after the GPU pipeline's
//   own preparation (expansion, fusion, cache unpacking, canonicalize, CSE).
// The NVVM half of attn-lower-to-nvvm (NVPTX code generation, ptxas) is not
// run: it is upstream code and far too slow per input.
//
// Diagnostics are swallowed; a failed parse, verification or pass is a
// normal outcome. Only crashes, hangs, sanitizer reports and fatal errors
// are findings. Inputs over 64 KiB are rejected.
//
// Inputs that mention `linalg` are rejected before parsing: upstream's
// linalg op parsers crash on malformed input (test/Fuzz/README.md), and the
// pipelines below never run on modules holding linalg ops anyway.
//
// Pipelines run only on modules whose ops all come from the dialects of the
// attn input IR (builtin, func, attn, arith, tensor, math) and that hold at
// least one attn op, so that the fuzzer spends its time in our passes rather
// than in upstream lowerings of unrelated IR.
//
//===----------------------------------------------------------------------===//

#include "attn/InitAll.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/ADT/StringSet.h"

#include <cstddef>
#include <cstdint>
#include <string>

using namespace mlir;

static const DialectRegistry &getRegistry() {
  static const DialectRegistry *registry = [] {
    auto *r = new DialectRegistry();
    attn::registerAllDialects(*r);
    return r;
  }();
  return *registry;
}

/// True if every op is in one of the attn input dialects and one is attn.
static bool isAttnInput(ModuleOp module) {
  static const llvm::StringSet<> allowed = {"builtin", "func", "attn",
                                            "arith", "tensor", "math"};
  bool hasAttn = false, ok = true;
  module->walk([&](Operation *op) {
    StringRef ns = op->getName().getDialectNamespace();
    hasAttn |= ns == "attn";
    if (!allowed.contains(ns)) {
      ok = false;
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return ok && hasAttn;
}

static void runOnClone(MLIRContext &ctx, ModuleOp module,
                       llvm::function_ref<void(OpPassManager &)> build) {
  OwningOpRef<ModuleOp> clone(module.clone());
  PassManager pm(&ctx);
  build(pm);
  (void)pm.run(*clone);
}

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  (void)getRegistry();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 64 * 1024)
    return -1; // Not added to the corpus.

  // A std::string: the lexer relies on a NUL after the last byte.
  std::string source(reinterpret_cast<const char *>(data), size);
  if (StringRef(source).contains("linalg"))
    return -1; // Known upstream parser crashes; see test/Fuzz/README.md.

  MLIRContext ctx(getRegistry(), MLIRContext::Threading::DISABLED);
  ScopedDiagnosticHandler swallow(&ctx, [](Diagnostic &) { return success(); });

  ParserConfig config(&ctx);
  OwningOpRef<ModuleOp> module =
      parseSourceString<ModuleOp>(source, config, "fuzz-input");
  if (!module || failed(verify(*module)) || !isAttnInput(*module))
    return 0;

  runOnClone(ctx, *module, [](OpPassManager &pm) {
    pm.addPass(attn::createAttnExpandComposite());
  });
  runOnClone(ctx, *module, [](OpPassManager &pm) {
    pm.addPass(attn::createAttnExpandComposite());
    attn::addFusionPasses(pm);
  });
  runOnClone(ctx, *module, [](OpPassManager &pm) {
    attn::CPUPipelineOptions options;
    attn::buildLowerToCPUPipeline(pm, options);
  });
  runOnClone(ctx, *module, [](OpPassManager &pm) {
    pm.addPass(attn::createConvertAttnToGPU());
  });
  runOnClone(ctx, *module, [](OpPassManager &pm) {
    pm.addPass(attn::createAttnExpandComposite());
    attn::addFusionPasses(pm);
    pm.addPass(attn::createAttnUnpackCacheArguments());
    pm.addPass(createCanonicalizerPass());
    pm.addPass(createCSEPass());
    pm.addPass(attn::createConvertAttnToGPU());
  });
  return 0;
}
