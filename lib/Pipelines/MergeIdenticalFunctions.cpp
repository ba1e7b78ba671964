//===- MergeIdenticalFunctions.cpp - one copy of identical functions ------===//

#include "attn/Pipelines/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/FunctionInterfaces.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNMERGEIDENTICALFUNCTIONS
#include "attn/Pipelines/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;

/// The attributes of `op` but its symbol name.
static DictionaryAttr attributesButName(Operation *op) {
  NamedAttrList attributes(op->getAttrDictionary());
  attributes.erase(SymbolTable::getSymbolAttrName());
  return attributes.getDictionary(op->getContext());
}

/// Whether `a` and `b` differ at most in their name and locations.
static bool areIdentical(FunctionOpInterface a, FunctionOpInterface b) {
  return a->getName() == b->getName() &&
         a.getFunctionType() == b.getFunctionType() &&
         attributesButName(a) == attributesButName(b) &&
         OperationEquivalence::isRegionEquivalentTo(
             &a.getFunctionBody(), &b.getFunctionBody(),
             OperationEquivalence::IgnoreLocations);
}

/// Whether `function` can only be referred to in this module (its name is
/// no ABI): a private symbol, or an `llvm.func` of local linkage.
static bool isLocal(FunctionOpInterface function) {
  if (auto llvmFunction = dyn_cast<LLVM::LLVMFuncOp>(*function))
    return llvmFunction.getLinkage() == LLVM::Linkage::Private ||
           llvmFunction.getLinkage() == LLVM::Linkage::Internal;
  return function.isPrivate();
}

/// Replaces the body of `copy` by a call of `original` with its arguments,
/// one that LLVM must not inline (that would copy the body again).
template <typename FuncOp, typename CallOp, typename ReturnOp>
static void forwardTo(FuncOp copy, FuncOp original) {
  Region &body = copy.getBody();
  body.dropAllReferences();
  body.getBlocks().clear();
  Block *entry = cast<FunctionOpInterface>(*copy).addEntryBlock();
  auto b = OpBuilder::atBlockBegin(entry);
  auto call =
      CallOp::create(b, copy.getLoc(), original, entry->getArguments());
  call.setNoInline(true);
  ReturnOp::create(b, copy.getLoc(), call.getResults());
}

namespace {
struct AttnMergeIdenticalFunctionsPass
    : public attn::impl::AttnMergeIdenticalFunctionsBase<
          AttnMergeIdenticalFunctionsPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    // Kernels first: host functions launching copies become identical.
    for (auto kernels : module.getOps<gpu::GPUModuleOp>())
      mergeIn(kernels.getBody(), /*isKernelModule=*/true);
    mergeIn(module.getBody(), /*isKernelModule=*/false);
  }

  /// Merges the functions defined in `block`, a symbol table's body.
  void mergeIn(Block *block, bool isKernelModule) {
    // Functions of one type, first seen first: few per type, so the
    // pairwise comparison stays cheap.
    DenseMap<Type, SmallVector<FunctionOpInterface>> originals;
    for (auto function :
         llvm::make_early_inc_range(block->getOps<FunctionOpInterface>())) {
      if (function.isExternal())
        continue;
      SmallVector<FunctionOpInterface> &candidates =
          originals[function.getFunctionType()];
      auto original = llvm::find_if(candidates, [&](FunctionOpInterface f) {
        return areIdentical(f, function);
      });
      if (original == candidates.end()) {
        candidates.push_back(function);
        continue;
      }
      if (isKernelModule || isLocal(function)) {
        if (failed(SymbolTable::replaceAllSymbolUses(
                function, original->getNameAttr(), getOperation())))
          return signalPassFailure();
        function.erase();
      } else if (auto copy = dyn_cast<func::FuncOp>(*function)) {
        forwardTo<func::FuncOp, func::CallOp, func::ReturnOp>(
            copy, cast<func::FuncOp>(**original));
      } else if (auto copy = dyn_cast<LLVM::LLVMFuncOp>(*function)) {
        forwardTo<LLVM::LLVMFuncOp, LLVM::CallOp, LLVM::ReturnOp>(
            copy, cast<LLVM::LLVMFuncOp>(**original));
      }
    }
  }
};
} // namespace
