//===- CPUPipeline.cpp - attn -> LLVM for the host CPU --------------------===//

#include "attn/Pipelines/Pipelines.h"

#include "attn/Conversion/Passes.h"
#include "attn/Dialect/Attn/Transforms/Passes.h"
#include "attn/Pipelines/Passes.h"
#include "attn/Target/CPU/Transforms/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Arith/Transforms/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/SCF/Transforms/Passes.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

/// attn ops on tensors -> linalg, vector and scf on tensors.
static void addAttnToLinalg(OpPassManager &pm,
                            const attn::CPUPipelineOptions &options) {
  attn::addPrimitiveOpsPasses(pm, options.fuse);
  if (options.runtimeChecks)
    pm.addPass(attn::createAttnInsertEntryChecks());
  // Prepended: the size checks go first.
  if (options.abiChecks)
    pm.addPass(attn::createAttnInsertABIChecks());
  // No CSE after this point: merged tensor.empty ops would force copies.
  attn::ConvertAttnToLinalgOptions toLinalg;
  toLinalg.queryTileRows = options.queryTileRows;
  toLinalg.kvTile = options.kvTile;
  toLinalg.vectorLanes = options.vectorLanes;
  toLinalg.decodeItems = options.decodeItems;
  toLinalg.int8Dot = options.int8Dot;
  toLinalg.int8MaxRows = options.int8MaxRows;
  pm.addPass(attn::createConvertAttnToLinalg(toLinalg));
  pm.addPass(createCanonicalizerPass());
}

/// Tensors -> buffers (cache blocks written in place), the C ABI of the entry
/// points, deallocation.
static void addBufferization(OpPassManager &pm) {
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.allowReturnAllocsFromLoops = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  // Canonicalising first forwards loop-carried buffers to the arguments.
  pm.addPass(createCanonicalizerPass());
  pm.addPass(attn::createAttnCPUEntryABI());
  pm.addPass(attn::createAttnEntryStatus());
  pm.addPass(createCanonicalizerPass());
  bufferization::buildBufferDeallocationPipeline(pm);
  // Entry points of one layer lowered alike: the rest of the pipeline and
  // LLVM handle one copy (the ABI is final here, so a copy can call it).
  pm.addPass(attn::createAttnMergeIdenticalFunctions());
}

/// Loops, vectors and buffers -> LLVM dialect, parallel loops on OpenMP
/// threads.
static void addLowerToLLVM(OpPassManager &pm) {
  pm.addPass(createForallToParallelLoopPass());
  pm.addPass(createConvertSCFToOpenMPPass());
  pm.addPass(attn::createAttnApproximateMath());
  pm.addPass(createConvertVectorToSCFPass(
      VectorTransferToSCFOptions().enableFullUnroll().setTargetRank(1)));
  pm.addPass(createConvertLinalgToLoopsPass());
  pm.addPass(createLowerAffinePass());
  // bf16 arithmetic outside the attn kernels (e.g. an unfused bias add) in f32.
  arith::ArithEmulateUnsupportedFloatsOptions emulateBF16;
  emulateBF16.sourceTypeStrs = {"bf16"};
  emulateBF16.targetTypeStr = "f32";
  pm.addPass(arith::createArithEmulateUnsupportedFloats(emulateBF16));
  arith::ArithExpandOpsPassOptions expand;
  expand.includeBf16 = true;
  pm.addPass(arith::createArithExpandOpsPass(expand));
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  // memref first: it inlines OpenMP's alloca scopes, which must still hold a
  // single block when scf becomes cf.
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createConvertMathToLLVMPass());
  ConvertVectorToLLVMPassOptions vectorToLLVM;
  vectorToLLVM.vectorTransposeLowering =
      vector::VectorTransposeLowering::Shuffle1D;
  vectorToLLVM.reassociateFPReductions = true;
  pm.addPass(createConvertVectorToLLVMPass(vectorToLLVM));
  pm.addPass(createConvertToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}

void attn::buildLowerToCPUPipeline(OpPassManager &pm,
                                   const CPUPipelineOptions &options) {
  // A sharded layer's collectives: one MPI process per device.
  pm.addPass(attn::createAttnLowerAllReduceToMPI());
  pm.addPass(attn::createAttnConvertMPIToLLVM());
  addAttnToLinalg(pm, options);
  addBufferization(pm);
  addLowerToLLVM(pm);
}

void attn::registerLowerToCPUPipeline() {
  PassPipelineRegistration<CPUPipelineOptions>(
      "attn-lower-to-cpu",
      "Lower attn IR to the LLVM dialect for the host CPU (vector units, "
      "OpenMP threads, in-place cache writes, C entry points)",
      buildLowerToCPUPipeline);
}
