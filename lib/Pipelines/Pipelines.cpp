//===- Pipelines.cpp - what the attn pipelines share ----------------------===//

#include "attn/Pipelines/Pipelines.h"

#include "attn/Dialect/Attn/Transforms/Passes.h"
#include "attn/Pipelines/Passes.h"

#include "mlir/Transforms/Passes.h"

using namespace mlir;

void attn::addFusionPasses(OpPassManager &pm) {
  pm.addPass(createAttnFuseProjectionEpilogues());
  pm.addPass(createAttnFuseQKV());
  pm.addPass(createAttnFuseRopeStore());
  pm.addPass(createAttnFuseQKNormRope());
}

void attn::addPrimitiveOpsPasses(OpPassManager &pm, bool fuse) {
  pm.addPass(createAttnExpandComposite());
  // Fusion works on the primitive ops, before the caches are unpacked.
  if (fuse)
    addFusionPasses(pm);
  pm.addPass(createAttnUnpackCacheArguments());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
}

void attn::registerPipelines() {
  registerAttnPipelinePasses();
  registerLowerToCPUPipeline();
  registerLowerToNVVMPipeline();
}
