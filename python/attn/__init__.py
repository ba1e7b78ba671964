"""attn-mlir Python side.

- ``attn.reference``: numpy reference of the attention block.
- ``attn.ir``: MLIR text builders for test and benchmark entry functions.
- ``attn.gguf``: GGUF files (llama.cpp checkpoints) and a layer's arguments from their tensors.
- ``attn.runtime``: compiling with ``attn-compile --target=cpu`` and calling the library (docs/ABI.md).
"""
