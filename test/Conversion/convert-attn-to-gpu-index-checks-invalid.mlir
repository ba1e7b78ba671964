// RUN: attn-opt %s --attn-insert-entry-checks=index-values=false --convert-attn-to-gpu=validate-index-values=true -split-input-file -verify-diagnostics

// Rows known only inside the function cannot be checked before the work (the
// diagnostic of the CPU checks, given before the function is lowered).
func.func @computed_rows(%n: index, %blocks: tensor<?x2x3x16x2x64xbf16>,
                         %off: tensor<?xi32>, %len: tensor<?xi32>, %lut: tensor<?x?xi32>) -> tensor<?x2x3x16x2x64xbf16> {
  // expected-error @+1 {{cannot check the row offsets of this tensor at the start of the function}}
  %k = tensor.empty(%n) : tensor<?x2x64xbf16>
  %b = attn.kv_cache_store %k, %k into %blocks layer 2 positions(%off, %len) pages(%lut)
      : tensor<?x2x64xbf16>, tensor<?x2x64xbf16>, tensor<?xi32>, tensor<?xi32>, tensor<?x?xi32>, tensor<?x2x3x16x2x64xbf16>
  return %b : tensor<?x2x3x16x2x64xbf16>
}
