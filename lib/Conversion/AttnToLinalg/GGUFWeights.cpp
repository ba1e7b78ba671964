//===- GGUFWeights.cpp - GGUF blocks decoded in registers -----------------===//
//
// Q4_0, Q8_0, Q4_K and Q6_K blocks decoded to f32 as python/attn/reference.py
// (GGUFWeight) and ggml's dequantize_row_* write it: each piece of up to 16
// consecutive k lies in one 16-element run of its block, so it has one scale
// (and min) and its quants are one vector load of bytes at one shift.
//
//===----------------------------------------------------------------------===//

#include "QuantizedWeights.h"

#include "attn/Dialect/Attn/IR/AttnOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::linalg_lowering;

namespace {

/// Elements of a piece: the 16-element runs of Q4_0 (low / high nibbles) and
/// Q6_K (one scale each) bound it.
constexpr int64_t kPiece = 16;

struct GGUFReader : WeightReader {
  GGUFReader(Value blocks, GGUFAttr encoding)
      : blocks(blocks), type(encoding.getType()),
        elements(encoding.getBlockElements()),
        bytes(encoding.getBlockBytes()) {}

  Value row(IB &b, Value n, Value k, int64_t width) override {
    BuilderScope scope(b);
    return pieces(b, width, [&](int64_t first) {
      Idx e = Idx(k) + first;
      return decodePiece(b, n, Idx(e / elements) * bytes, e % elements);
    });
  }

  int64_t blockElements() const override { return elements; }

  /// With the offset in the block a constant, the piece's byte offsets,
  /// shifts and scale indices fold, and the scale loads of one block are
  /// common to its pieces.
  Value rowAt(IB &b, Value n, Value kBlock, int64_t offset,
              int64_t width) override {
    BuilderScope scope(b);
    Idx base = Idx(kBlock) / elements * bytes;
    return pieces(b, width, [&](int64_t first) {
      int64_t e = offset + first;
      return decodePiece(b, n, base + e / elements * bytes,
                         cIndex(b, e % elements));
    });
  }

  /// `width` elements from pieces of up to kPiece: `decode(first)` gives the
  /// piece starting `first` elements in, `pieceWidth` wide.
  Value pieces(IB &b, int64_t width,
               function_ref<Value(int64_t first)> decode) {
    pieceWidth = std::min(width, kPiece);
    if (width == pieceWidth)
      return decode(0);
    Value result = zero(b, vecType(b.getF32Type(), {width}));
    for (int64_t first = 0; first < width; first += pieceWidth)
      result = vector::InsertStridedSliceOp::create(
          b, decode(first), result, ArrayRef<int64_t>{first},
          ArrayRef<int64_t>{1});
    return result;
  }

  /// Elements `o .. o + pieceWidth` of the block at byte `base` of row `n`.
  Value decodePiece(IB &b, Value n, Idx base, Idx o) {
    int64_t width = pieceWidth;
    switch (type) {
    case GGUFType::Q4_0: {
      // y[j] = (lo(qs[j]) - 8) d, y[j + 16] = (hi(qs[j]) - 8) d.
      Value q = nibbles(b, n, base + 2 + o % 16, Idx(o / 16) * 4, width);
      Value centred = arith::SubIOp::create(b, q, splatI32(b, 8, width));
      return scaled(b, toFloat(b, centred, /*isSigned=*/true),
                    f16At(b, n, base));
    }
    case GGUFType::Q8_0: {
      Value q = readVector(b, blocks, {n, base + 2 + o}, width);
      return scaled(b, toFloat(b, q, /*isSigned=*/true), f16At(b, n, base));
    }
    case GGUFType::Q4_K:
      return decodeQ4K(b, n, base, o, width);
    case GGUFType::Q6_K:
      return decodeQ6K(b, n, base, o, width);
    }
    llvm_unreachable("unknown GGUF type");
  }

  /// Sub-block j = o / 32 of 32: nibbles of qs[32 (j / 2) + o % 32], low for
  /// even j; `y = (d sc_j) q - dmin m_j` with the 6-bit scale and min of j.
  Value decodeQ4K(IB &b, Value n, Idx base, Idx o, int64_t width) {
    Idx j = o / 32;
    Value q = nibbles(b, n, base + 16 + Idx(j / 2) * 32 + o % 32,
                      Idx(j % 2) * 4, width);
    // scale_min(j): j < 4 from scales[j], scales[j + 4]; else with the top
    // bits of scales[j - 4], scales[j].
    Idx scales = base + 4;
    Idx a = byteAt(b, n, scales + j), c = byteAt(b, n, scales + j + 4),
        below = byteAt(b, n, scales + j % 4);
    Idx top = Idx(below) / 64 * 16, topMin = Idx(a) / 64 * 16;
    Value first = j < 4;
    Value sc = select(b, first, a & 63, orI(b, c & 15, top));
    Value m = select(b, first, c & 63, orI(b, c / 16, topMin));
    Value d = arith::MulFOp::create(b, f16At(b, n, base), uiToF32(b, sc));
    Value dmin = arith::MulFOp::create(b, f16At(b, n, base + 2), uiToF32(b, m));
    return arith::SubFOp::create(b, scaled(b, toFloat(b, q, false), d),
                                 splat(b, dmin, width));
  }

  /// Half h = o / 128, quarter r = (o % 128) / 32, l = o % 32: low (r < 2)
  /// or high nibbles of ql[64 h + 32 (r % 2) + l], bits 2r of qh[32 h + l]
  /// above them, minus 32; times d scales[8 h + 2 r + l / 16].
  Value decodeQ6K(IB &b, Value n, Idx base, Idx o, int64_t width) {
    Idx h = o / 128, r = o % 128 / 32, l = o % 32;
    Value low = nibbles(b, n, base + h * 64 + Idx(r % 2) * 32 + l,
                        Idx(r / 2) * 4, width);
    Value high = arith::AndIOp::create(
        b,
        arith::ShRUIOp::create(b, bytesAt(b, n, base + 128 + h * 32 + l, width),
                               splat(b, indexCast(b, r * 2, b.getI32Type()),
                                     width)),
        splatI32(b, 3, width));
    Value q = arith::SubIOp::create(
        b,
        arith::OrIOp::create(
            b, low, arith::ShLIOp::create(b, high, splatI32(b, 4, width))),
        splatI32(b, 32, width));
    Value scale = arith::SIToFPOp::create(
        b, b.getF32Type(),
        tensor::ExtractOp::create(
            b, blocks, ValueRange{n, base + 192 + h * 8 + r * 2 + l / 16}));
    Value factor = arith::MulFOp::create(b, f16At(b, n, base + 208), scale);
    return scaled(b, toFloat(b, q, /*isSigned=*/true), factor);
  }

  /// The bytes at `offset ..` of row `n` zero-extended to i32.
  Value bytesAt(IB &b, Value n, Value offset, int64_t width) {
    return arith::ExtUIOp::create(b, vecType(b.getI32Type(), {width}),
                                  readVector(b, blocks, {n, offset}, width));
  }

  /// `(bytes >> shift) & 15` of the bytes at `offset ..` (shift 0 or 4).
  Value nibbles(IB &b, Value n, Value offset, Idx shift, int64_t width) {
    Value s = splat(b, indexCast(b, shift, b.getI32Type()), width);
    return arith::AndIOp::create(
        b, arith::ShRUIOp::create(b, bytesAt(b, n, offset, width), s),
        splatI32(b, 15, width));
  }

  /// One byte as an unsigned i32.
  Idx byteAt(IB &b, Value n, Value offset) {
    return Value(arith::ExtUIOp::create(
        b, b.getI32Type(),
        tensor::ExtractOp::create(b, blocks, ValueRange{n, offset})));
  }

  Value f16At(IB &b, Value n, Value offset) {
    return ggufF16(b, blocks, n, offset);
  }

  static Value splatI32(IB &b, int64_t value, int64_t width) {
    return splat(b, cI32(b, value), width);
  }
  static Value orI(IB &b, Value x, Value y) {
    return arith::OrIOp::create(b, x, y);
  }
  static Value uiToF32(IB &b, Value v) {
    return arith::UIToFPOp::create(b, b.getF32Type(), v);
  }
  static Value toFloat(IB &b, Value v, bool isSigned) {
    auto type = vecType(b.getF32Type(), cast<VectorType>(v.getType()).getShape());
    if (isSigned)
      return arith::SIToFPOp::create(b, type, v);
    return arith::UIToFPOp::create(b, type, v);
  }
  static Value scaled(IB &b, Value v, Value factor) {
    int64_t width = cast<VectorType>(v.getType()).getNumElements();
    return arith::MulFOp::create(b, v, splat(b, factor, width));
  }

  Value blocks;
  GGUFType type;
  int64_t elements, bytes;
  int64_t pieceWidth = kPiece;
};

} // namespace

Value linalg_lowering::ggufF16(IB &b, Value blocks, Value n, Value offset) {
  Value pair = readVector(b, blocks, {n, offset}, 2);
  Value half = vector::BitCastOp::create(b, vecType(b.getF16Type(), {1}), pair);
  return toF32(b, vector::ExtractOp::create(b, half, ArrayRef<int64_t>{0}));
}

std::unique_ptr<WeightReader>
linalg_lowering::makeGGUFReader(Value blocks, GGUFAttr encoding) {
  return std::make_unique<GGUFReader>(blocks, encoding);
}
