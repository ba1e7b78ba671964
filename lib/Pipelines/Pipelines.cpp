//===- Pipelines.cpp - what the attn pipelines share ----------------------===//

#include "attn/Pipelines/Pipelines.h"

#include "attn/Dialect/Attn/Transforms/Passes.h"

using namespace mlir;

void attn::addFusionPasses(OpPassManager &pm) {
  pm.addPass(createAttnFuseProjectionEpilogues());
  pm.addPass(createAttnFuseQKV());
  pm.addPass(createAttnFuseRopeStore());
  pm.addPass(createAttnFuseQKNormRope());
}

void attn::registerPipelines() {
  registerLowerToCPUPipeline();
  registerLowerToNVVMPipeline();
}
