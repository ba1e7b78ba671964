//===- AttnAttrInterfaces.td - attn attribute interfaces ---*- tablegen -*-===//

#ifndef ATTN_DIALECT_ATTN_IR_ATTNATTRINTERFACES_TD
#define ATTN_DIALECT_ATTN_IR_ATTNATTRINTERFACES_TD

include "mlir/IR/OpBase.td"

def Attn_RopeScalingAttrInterface : AttrInterface<"RopeScalingAttrInterface"> {
  let cppNamespace = "::mlir::attn";
  let description = [{
    A RoPE frequency scaling (linear, llama3, YaRN, LongRoPE). A scaling only
    changes the inverse frequencies and, for YaRN and LongRoPE, multiplies
    cos and sin by a magnitude scale; the lowering and the table folder ask
    the interface instead of knowing every kind.
  }];
  let methods = [
    InterfaceMethod<[{
        Rewrites the unscaled inverse frequencies `invFreq[i] = theta^(-2i/D)`
        in place (f64) for a token at `position`.
      }], "void", "scaleInvFreq",
      (ins "::llvm::MutableArrayRef<double>":$invFreq, "double":$theta,
           "int64_t":$headDim, "int64_t":$position)>,
    InterfaceMethod<[{Multiplier applied to both cos and sin.}],
      "double", "getMagnitudeScale", (ins)>,
    InterfaceMethod<[{
        Checks the parameters against the head dim (for per-frequency
        factor lists); reports through `emitError`.
      }], "::llvm::LogicalResult", "verifyForHeadDim",
      (ins "int64_t":$headDim,
           "::llvm::function_ref<::mlir::InFlightDiagnostic()>":$emitError),
      /*methodBody=*/"", /*defaultImplementation=*/"return ::mlir::success();">,
  ];
}

#endif // ATTN_DIALECT_ATTN_IR_ATTNATTRINTERFACES_TD
