
// 128 query heads over 1 kv head: a group of 128 does not fit the 64-row tile.
func.func @flash_group_too_big(%q: tensor<?x128x64xbf16>, %k: tensor<?x1x64xbf16>, %v: tensor<?x1x64xbf16>, %qo: tensor<3xi32>, %ko: tensor<3xi32>) -> tensor<?x128x64xbf16> {
  // expected-error @+1 {{'attn.flash_attention' op needs at most 64 query heads per kv head on the GPU}}
  %0 = attn.flash_attention %q, %k, %v rows(%qo, %ko) : tensor<?x128x64xbf16>, tensor<?x1x64xbf16>, tensor<?x1x64xbf16>, tensor<3xi32>, tensor<3xi32>
  return %0 : tensor<?x128x64xbf16>
}

