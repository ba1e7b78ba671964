//===- UnpackCacheArguments.cpp - opaque caches -> tensors at calls -------===//

#include "attn/Dialect/Attn/IR/AttnOps.h"
#include "attn/Dialect/Attn/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace mlir::attn {
#define GEN_PASS_DEF_ATTNUNPACKCACHEARGUMENTS
#include "attn/Dialect/Attn/Transforms/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

/// The tensor types that stand for one value of `type` (itself if not a cache).
SmallVector<Type> unpackedTypes(Type type) {
  auto cache = dyn_cast<PagedKVCacheType>(type);
  if (!cache)
    return {type};
  Builder b(type.getContext());
  // The result types of attn.paged_cache.parts.
  return {cache.getBlocksType(),
           RankedTensorType::get({ShapedType::kDynamic}, b.getI32Type()),
           RankedTensorType::get({ShapedType::kDynamic, ShapedType::kDynamic},
                                 b.getI32Type())};
}

bool hasCache(TypeRange types) {
  return llvm::any_of(types, [](Type t) { return isa<PagedKVCacheType>(t); });
}

/// Replaces each cache in `values` by its three parts.
SmallVector<Value> unpackValues(OpBuilder &b, Location loc, ValueRange values) {
  SmallVector<Value> flat;
  for (Value v : values) {
    if (!isa<PagedKVCacheType>(v.getType())) {
      flat.push_back(v);
      continue;
    }
    auto parts = PagedCachePartsOp::create(b, loc, v);
    flat.append(parts->result_begin(), parts->result_end());
  }
  return flat;
}

struct AttnUnpackCacheArgumentsPass
    : attn::impl::AttnUnpackCacheArgumentsBase<AttnUnpackCacheArgumentsPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    for (auto func : module.getOps<func::FuncOp>()) {
      FunctionType type = func.getFunctionType();
      if (!hasCache(type.getInputs()) && !hasCache(type.getResults()))
        continue;
      SmallVector<Type> inputs, results;
      // Attributes follow their values; a cache's three parts get none.
      SmallVector<DictionaryAttr> argAttrs, resultAttrs;
      auto spread = [](Type t, DictionaryAttr attrs,
                       SmallVectorImpl<Type> &types,
                       SmallVectorImpl<DictionaryAttr> &dicts) {
        SmallVector<Type> parts = unpackedTypes(t);
        llvm::append_range(types, parts);
        bool isCache = parts.size() > 1;
        dicts.append(parts.size(), isCache ? DictionaryAttr() : attrs);
      };
      for (auto [i, t] : llvm::enumerate(type.getInputs()))
        spread(t, func.getArgAttrDict(i), inputs, argAttrs);
      for (auto [i, t] : llvm::enumerate(type.getResults()))
        spread(t, func.getResultAttrDict(i), results, resultAttrs);
      if (!func.isExternal()) {
        Block &entry = func.getBody().front();
        OpBuilder b = OpBuilder::atBlockBegin(&entry);
        // Walk arguments back to front so indices stay valid while inserting.
        for (int64_t i = entry.getNumArguments() - 1; i >= 0; --i) {
          BlockArgument arg = entry.getArgument(i);
          auto cache = dyn_cast<PagedKVCacheType>(arg.getType());
          if (!cache)
            continue;
          SmallVector<Value> parts;
          for (auto [k, t] : llvm::enumerate(unpackedTypes(cache)))
            parts.push_back(entry.insertArgument(i + 1 + k, t, arg.getLoc()));
          auto make = PagedCacheMakeOp::create(b, arg.getLoc(), cache, parts[0],
                                               parts[1], parts[2]);
          arg.replaceAllUsesWith(make);
          entry.eraseArgument(i);
        }
        func.walk([&](func::ReturnOp ret) {
          OpBuilder rb(ret);
          SmallVector<Value> flat =
              unpackValues(rb, ret.getLoc(), ret.getOperands());
          ret->setOperands(flat);
        });
      }
      func.setType(FunctionType::get(&getContext(), inputs, results));
      func.setAllArgAttrs(argAttrs);
      func.setAllResultAttrs(resultAttrs);
    }
    // Calls between functions of the module follow the new signatures.
    module.walk([&](func::CallOp call) {
      if (!hasCache(call.getOperandTypes()) && !hasCache(call.getResultTypes()))
        return;
      OpBuilder b(call);
      SmallVector<Value> operands =
          unpackValues(b, call.getLoc(), call.getOperands());
      SmallVector<Type> results;
      for (Type t : call.getResultTypes())
        llvm::append_range(results, unpackedTypes(t));
      auto newCall = func::CallOp::create(b, call.getLoc(), call.getCallee(),
                                          results, operands);
      unsigned next = 0;
      for (Value old : call.getResults()) {
        auto cache = dyn_cast<PagedKVCacheType>(old.getType());
        if (!cache) {
          old.replaceAllUsesWith(newCall.getResult(next++));
          continue;
        }
        auto make = PagedCacheMakeOp::create(
            b, call.getLoc(), cache, newCall.getResult(next),
            newCall.getResult(next + 1), newCall.getResult(next + 2));
        next += 3;
        old.replaceAllUsesWith(make);
      }
      call.erase();
    });
  }
};

} // namespace
