//===- AttnAttrs.cpp - attn attributes ------------------------------------===//

#include "attn/Dialect/Attn/IR/AttnAttrs.h"
#include "attn/Dialect/Attn/IR/AttnDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::attn;

#include "attn/Dialect/Attn/IR/AttnAttrInterfaces.cpp.inc"
#include "attn/Dialect/Attn/IR/AttnEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "attn/Dialect/Attn/IR/AttnAttrs.cpp.inc"

void AttnDialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "attn/Dialect/Attn/IR/AttnAttrs.cpp.inc"
      >();
}

namespace {
using EmitErrorFn = function_ref<InFlightDiagnostic()>;

/// Sizes are kept below 2^31 so that products of a few of them and 32-bit
/// runtime indices cannot overflow.
constexpr int64_t kMaxSize = std::numeric_limits<int32_t>::max();

LogicalResult checkPositive(EmitErrorFn emitError, StringRef name,
                            const APFloat &apValue) {
  double value = apValue.convertToDouble();
  if (!std::isfinite(value) || value <= 0)
    return emitError() << "'" << name << "' must be positive and finite";
  return success();
}

LogicalResult checkSize(EmitErrorFn emitError, StringRef name, int64_t value) {
  if (value <= 0 || value > kMaxSize)
    return emitError() << "'" << name << "' must be in [1, " << kMaxSize
                       << "], got " << value;
  return success();
}
} // namespace

//===----------------------------------------------------------------------===//
// MaskAttr
//===----------------------------------------------------------------------===//

Attribute MaskAttr::parse(AsmParser &parser, Type) {
  StringRef keyword;
  SMLoc loc = parser.getCurrentLocation();
  if (parser.parseLess() || parser.parseKeyword(&keyword))
    return {};
  std::optional<MaskKind> kind = symbolizeMaskKind(keyword);
  if (!kind) {
    parser.emitError(loc, "expected 'none', 'causal' or 'sliding_window'");
    return {};
  }
  int64_t window = 0;
  if (*kind == MaskKind::SlidingWindow &&
      (parser.parseEqual() || parser.parseInteger(window)))
    return {};
  if (parser.parseGreater())
    return {};
  return getChecked([&] { return parser.emitError(loc); },
                    parser.getContext(), *kind, window);
}

void MaskAttr::print(AsmPrinter &printer) const {
  printer << '<' << stringifyMaskKind(getKind());
  if (getKind() == MaskKind::SlidingWindow)
    printer << " = " << getWindow();
  printer << '>';
}

LogicalResult MaskAttr::verify(EmitErrorFn emitError, MaskKind kind,
                               int64_t window) {
  if (kind == MaskKind::SlidingWindow)
    return checkSize(emitError, "window", window);
  if (window != 0)
    return emitError() << "only a sliding_window mask has a window";
  return success();
}

//===----------------------------------------------------------------------===//
// RoPE scalings
//===----------------------------------------------------------------------===//

LogicalResult LinearScalingAttr::verify(EmitErrorFn emitError, APFloat factor) {
  return checkPositive(emitError, "factor", factor);
}

void LinearScalingAttr::scaleInvFreq(MutableArrayRef<double> invFreq, double,
                                     int64_t, int64_t) const {
  for (double &f : invFreq)
    f /= getFactor().convertToDouble();
}

double LinearScalingAttr::getMagnitudeScale() const { return 1.0; }

LogicalResult Llama3ScalingAttr::verify(EmitErrorFn emitError, APFloat factor,
                                        APFloat low, APFloat high,
                                        int64_t original) {
  if (failed(checkPositive(emitError, "factor", factor)) ||
      failed(checkPositive(emitError, "low_freq_factor", low)) ||
      failed(checkPositive(emitError, "high_freq_factor", high)) ||
      failed(checkSize(emitError, "original_max_position", original)))
    return failure();
  if (high.convertToDouble() <= low.convertToDouble())
    return emitError() << "'high_freq_factor' must be greater than "
                          "'low_freq_factor'";
  return success();
}

void Llama3ScalingAttr::scaleInvFreq(MutableArrayRef<double> invFreq, double,
                                     int64_t, int64_t) const {
  double orig = static_cast<double>(getOriginalMaxPosition());
  double low = getLowFreqFactor().convertToDouble(), high = getHighFreqFactor().convertToDouble();
  double lowFreqWavelen = orig / low, highFreqWavelen = orig / high;
  for (double &f : invFreq) {
    double wavelen = 2 * M_PI / f;
    if (wavelen < highFreqWavelen)
      continue;
    if (wavelen > lowFreqWavelen) {
      f /= getFactor().convertToDouble();
      continue;
    }
    double smooth = (orig / wavelen - low) / (high - low);
    f = (1 - smooth) * f / getFactor().convertToDouble() + smooth * f;
  }
}

double Llama3ScalingAttr::getMagnitudeScale() const { return 1.0; }

LogicalResult YarnScalingAttr::verify(EmitErrorFn emitError, APFloat factor,
                                      APFloat betaFast, APFloat betaSlow,
                                      int64_t original) {
  if (failed(checkPositive(emitError, "factor", factor)) ||
      failed(checkPositive(emitError, "beta_fast", betaFast)) ||
      failed(checkPositive(emitError, "beta_slow", betaSlow)) ||
      failed(checkSize(emitError, "original_max_position", original)))
    return failure();
  return success();
}

void YarnScalingAttr::scaleInvFreq(MutableArrayRef<double> invFreq,
                                   double theta, int64_t headDim,
                                   int64_t) const {
  double dim = static_cast<double>(headDim);
  double orig = static_cast<double>(getOriginalMaxPosition());
  auto correctionDim = [&](double rotations) {
    return dim * std::log(orig / (rotations * 2 * M_PI)) /
           (2 * std::log(theta));
  };
  double lo = std::max(std::floor(correctionDim(getBetaFast().convertToDouble())), 0.0);
  double hi = std::min(std::ceil(correctionDim(getBetaSlow().convertToDouble())), dim - 1);
  double denom = hi == lo ? 0.001 : hi - lo;
  for (auto [i, f] : llvm::enumerate(invFreq)) {
    double ramp = std::clamp((static_cast<double>(i) - lo) / denom, 0.0, 1.0);
    f = (f / getFactor().convertToDouble()) * ramp + f * (1 - ramp);
  }
}

double YarnScalingAttr::getMagnitudeScale() const {
  return getFactor().convertToDouble() <= 1 ? 1.0 : 0.1 * std::log(getFactor().convertToDouble()) + 1.0;
}

LogicalResult LongRopeScalingAttr::verify(EmitErrorFn emitError,
                                          ArrayRef<APFloat> shortFactor,
                                          ArrayRef<APFloat> longFactor,
                                          int64_t original, int64_t maxPos) {
  if (shortFactor.empty() || shortFactor.size() != longFactor.size())
    return emitError() << "'short_factor' and 'long_factor' must be non-empty "
                          "and of the same length";
  for (const APFloat &f : llvm::concat<const APFloat>(shortFactor, longFactor))
    if (failed(checkPositive(emitError, "factor", f)))
      return failure();
  if (failed(checkSize(emitError, "original_max_position", original)) ||
      failed(checkSize(emitError, "max_position", maxPos)))
    return failure();
  if (original < 2)
    return emitError() << "'original_max_position' must be at least 2";
  return success();
}

void LongRopeScalingAttr::scaleInvFreq(MutableArrayRef<double> invFreq, double,
                                       int64_t, int64_t position) const {
  ArrayRef<APFloat> factors =
      position < getOriginalMaxPosition() ? getShortFactor() : getLongFactor();
  for (auto [f, factor] : llvm::zip(invFreq, factors))
    f /= factor.convertToDouble();
}

double LongRopeScalingAttr::getMagnitudeScale() const {
  double orig = static_cast<double>(getOriginalMaxPosition());
  double maxPos = static_cast<double>(getMaxPosition());
  if (maxPos <= orig)
    return 1.0;
  return std::sqrt(1 + std::log(maxPos / orig) / std::log(orig));
}

LogicalResult LongRopeScalingAttr::verifyForHeadDim(int64_t headDim,
                                                    EmitErrorFn emitError) const {
  if (static_cast<int64_t>(getShortFactor().size()) * 2 != headDim)
    return emitError() << "longrope scaling has " << getShortFactor().size()
                       << " factors per list but head dim " << headDim
                       << " needs " << headDim / 2;
  return success();
}

//===----------------------------------------------------------------------===//
// RopeAttr
//===----------------------------------------------------------------------===//

LogicalResult RopeAttr::verify(EmitErrorFn emitError, APFloat apTheta, bool,
                               RopeScalingAttrInterface) {
  double theta = apTheta.convertToDouble();
  if (!std::isfinite(theta) || theta <= 1)
    return emitError() << "'theta' must be finite and greater than 1";
  return success();
}

SmallVector<float> RopeAttr::computeInvFreq(int64_t headDim,
                                            int64_t position) const {
  SmallVector<double> invFreq(headDim / 2);
  for (auto [i, f] : llvm::enumerate(invFreq))
    f = std::pow(getTheta().convertToDouble(), -2.0 * static_cast<double>(i) /
                                 static_cast<double>(headDim));
  if (RopeScalingAttrInterface scaling = getScaling())
    scaling.scaleInvFreq(invFreq, getTheta().convertToDouble(), headDim, position);
  return SmallVector<float>(invFreq.begin(), invFreq.end());
}

double RopeAttr::getMagnitudeScale() const {
  RopeScalingAttrInterface scaling = getScaling();
  return scaling ? scaling.getMagnitudeScale() : 1.0;
}

LogicalResult RopeAttr::verifyForHeadDim(int64_t headDim,
                                         EmitErrorFn emitError) const {
  if (headDim <= 0 || headDim % 2 != 0)
    return emitError() << "rope needs a positive, even head dim, got "
                       << headDim;
  RopeScalingAttrInterface scaling = getScaling();
  return scaling ? scaling.verifyForHeadDim(headDim, emitError) : success();
}

//===----------------------------------------------------------------------===//
// KVCacheAttr
//===----------------------------------------------------------------------===//

LogicalResult KVCacheAttr::verify(EmitErrorFn emitError, int64_t pageSize,
                                  int64_t numLayers, int64_t kvHeads,
                                  int64_t headDim, Type dtype) {
  if (failed(checkSize(emitError, "page_size", pageSize)) ||
      failed(checkSize(emitError, "num_layers", numLayers)) ||
      failed(checkSize(emitError, "kv_heads", kvHeads)) ||
      failed(checkSize(emitError, "head_dim", headDim)))
    return failure();
  if (!isa<FloatType>(dtype))
    return emitError() << "'dtype' must be a floating-point type, got "
                       << dtype;
  return success();
}

RankedTensorType KVCacheAttr::getBlocksType(int64_t numPages) const {
  return RankedTensorType::get(
      {numPages, 2, getNumLayers(), getPageSize(), getKvHeads(), getHeadDim()},
      getDtype());
}
