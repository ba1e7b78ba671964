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

def Attn_WeightEncodingAttrInterface
    : AttrInterface<"WeightEncodingAttrInterface"> {
  let cppNamespace = "::mlir::attn";
  let description = [{
    How a quantised projection weight `W [N, K]` is stored (GPTQ, float8,
    GGUF). The encoding lists the tensors ("parts") a weight is made of and
    checks them, the weight's shape and the activations it may multiply, so
    that `attn.quantized_weight` and the projection ops verify every
    encoding alike.
  }];
  let methods = [
    InterfaceMethod<[{Names of the parts, in operand order (diagnostics).}],
      "::llvm::SmallVector<::llvm::StringRef>", "getPartNames", (ins)>,
    InterfaceMethod<[{
        Checks `W [rows, cols]` and its parts' types (count, shapes, element
        types) against the encoding; reports through `emitError`.
      }], "::llvm::LogicalResult", "verifyParts",
      (ins "int64_t":$rows, "int64_t":$cols, "::mlir::TypeRange":$parts,
           "::llvm::function_ref<::mlir::InFlightDiagnostic()>":$emitError)>,
    InterfaceMethod<[{
        Checks the element type of the activations multiplied with W.
      }], "::llvm::LogicalResult", "verifyActivationType",
      (ins "::mlir::Type":$type,
           "::llvm::function_ref<::mlir::InFlightDiagnostic()>":$emitError)>,
    InterfaceMethod<[{Whether a bias may be added to this projection.}],
      "bool", "allowsBias", (ins)>,
  ];
}

#endif // ATTN_DIALECT_ATTN_IR_ATTNATTRINTERFACES_TD
