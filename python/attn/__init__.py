"""attn-mlir Python side: the numpy reference of the attention block (see ``attn.reference``)."""
