//===- IndexValidationKernel.cpp - statuses 3-7 on the device -------------===//
//
// The CPU reads the index tensors on the host (attn-insert-entry-checks);
// on CUDA they are device memory, so one block checks them on the call's
// stream (IndexValidation.h): its threads stride over the entries of each
// check, each keeps the lowest status it finds, the block takes the minimum
// in shared memory and thread 0 writes it into the status word if that is
// still 0 (the first refused call's status stays). Every load is inside its
// tensor whatever the values.
//
//===----------------------------------------------------------------------===//

#include "IndexValidation.h"
#include "KernelArguments.h"

#include "attn/Dialect/Attn/Transforms/EntryStatus.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "llvm/ADT/MapVector.h"

#include <limits>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::gpu_lowering;

namespace {

/// The block size of the validation kernel.
constexpr int64_t kThreads = 256;
/// No failure yet (above every status).
constexpr int64_t kNoStatus = std::numeric_limits<int32_t>::max();

/// The rows (dim 0) of `t` (static, or the buffer of an argument).
Value rowsOf(IB &host, Value t, function_ref<Value(Value)> bufferOf) {
  auto type = cast<RankedTensorType>(t.getType());
  return type.isDynamicDim(0) ? Value(dim(host, bufferOf(t), 0))
                              : Value(cIndex(host, type.getDimSize(0)));
}

Idx orI(IB &b, Value x, Value y) {
  return Value(arith::OrIOp::create(b, x, y));
}

/// `code` lowered to `status` where `fails`.
Value report(IB &b, Value code, Value fails, EntryStatus status) {
  Value lowered = min(b, code, cI32(b, static_cast<int64_t>(status)));
  return select(b, fails, lowered, code);
}

/// A thread of the block running the checks, and the block's size.
struct Thread {
  Idx id;
  int64_t blockSize;
};

/// The fold of `step` over this thread's share of `[0, count)` (threads
/// stride by the block size), starting from `code`.
Value strided(IB &b, Thread thread, Value count, Value code,
              function_ref<Value(IB &, Idx i, Value code)> step) {
  return forLoop(b, thread.id, count, thread.blockSize, {code},
                 [&](IB &lb, Idx i, ValueRange carried) {
                   return SmallVector<Value>{step(lb, i, carried[0])};
                 })[0];
}

/// A sequence of a ragged batch, as the CPU checks see it.
struct Sequence {
  Idx cached, newRows, active;

  static Sequence at(IB &b, Value rowOffsets, Value cacheLengths, Idx s) {
    Sequence seq;
    seq.cached = loadIndex(b, cacheLengths, s);
    seq.newRows =
        loadIndex(b, rowOffsets, {s + 1}) - loadIndex(b, rowOffsets, s);
    seq.active = (seq.cached >= 0) & (seq.newRows > 0);
    return seq;
  }
};

/// The sequences whose entries are all inside the tensors.
Idx readable(IB &b, Value rowOffsets, Value cacheLengths, Value lookup = {}) {
  Idx n = min(b, dim(b, cacheLengths, 0), dim(b, rowOffsets, 0) - 1);
  if (lookup)
    n = min(b, n, dim(b, lookup, 0));
  return max(b, n, cIndex(b, 0));
}

Value checkRows(IB &b, Thread thread, const IndexValidationArgs::Rows &r,
                Value code) {
  Idx n = dim(b, r.rowOffsets, 0);
  code =
      report(b, code, (thread.id == 0) & (n < 1), EntryStatus::BadRowOffsets);
  return strided(b, thread, n, code, [&](IB &lb, Idx i, Value code) {
    Idx entry = loadIndex(lb, r.rowOffsets, i);
    // Entry 0 compares with itself.
    Idx previous = loadIndex(lb, r.rowOffsets, {max(lb, i, cIndex(lb, 1)) - 1});
    Idx bad = select(lb, i == 0, entry != 0, entry < previous);
    for (Value rows : r.rows)
      bad = orI(lb, bad, (i == n - 1) & (entry != Idx(rows)));
    return report(lb, code, bad, EntryStatus::BadRowOffsets);
  });
}

Value checkCacheLengths(IB &b, Thread thread, Value lengths, Value code) {
  return strided(b, thread, dim(b, lengths, 0), code,
                 [&](IB &lb, Idx s, Value code) {
                   return report(lb, code, loadIndex(lb, lengths, s) < 0,
                                 EntryStatus::NegativeCacheLength);
                 });
}

/// The pages `[first, end)` that an active sequence touches.
std::pair<Idx, Idx> pageRange(IB &b, const IndexValidationArgs::Paged &p,
                              const Sequence &seq) {
  Idx pageSize = dim(b, p.blocks, 3);
  Idx first = p.storeOnly ? seq.cached / pageSize : cIndex(b, 0);
  return {first, ceilDiv(b, seq.cached + seq.newRows, pageSize)};
}

Value checkTableWidth(IB &b, Thread thread, const IndexValidationArgs::Paged &p,
                      Value code) {
  Idx width = dim(b, p.lookup, 1);
  Idx count = readable(b, p.rowOffsets, p.cacheLengths, p.lookup);
  return strided(b, thread, count, code, [&](IB &lb, Idx s, Value code) {
    Sequence seq = Sequence::at(lb, p.rowOffsets, p.cacheLengths, s);
    Idx end = pageRange(lb, p, seq).second;
    return report(lb, code, seq.active & (end > width),
                  EntryStatus::LookupTableTooNarrow);
  });
}

/// A thread per lookup-table entry (sequence, column), so that a long
/// sequence's pages are checked in parallel.
Value checkPageIds(IB &b, Thread thread, const IndexValidationArgs::Paged &p,
                   Value code) {
  Idx width = dim(b, p.lookup, 1), numPages = dim(b, p.blocks, 0);
  Idx count = readable(b, p.rowOffsets, p.cacheLengths, p.lookup) * width;
  return strided(b, thread, count, code, [&](IB &lb, Idx entry, Value code) {
    Idx s = entry / width, column = entry % width;
    Sequence seq = Sequence::at(lb, p.rowOffsets, p.cacheLengths, s);
    auto [first, end] = pageRange(lb, p, seq);
    Idx touched = seq.active & (column >= first) & (column < end);
    Idx id = loadIndex(lb, p.lookup, {s, column});
    Idx outside = orI(lb, id < 0, id >= numPages);
    return report(lb, code, touched & outside, EntryStatus::PageOutOfRange);
  });
}

Value checkPositions(IB &b, Thread thread, const IndexValidationArgs::Rope &r,
                     Value code) {
  Idx count = readable(b, r.rowOffsets, r.cacheLengths);
  return strided(b, thread, count, code, [&](IB &lb, Idx s, Value code) {
    Sequence seq = Sequence::at(lb, r.rowOffsets, r.cacheLengths, s);
    Idx beyond = seq.cached + seq.newRows > Idx(r.tableRows);
    return report(lb, code, seq.active & beyond,
                  EntryStatus::PositionOutsideRopeTable);
  });
}

/// The lowest status of this thread's entries (kNoStatus if none fails).
Value threadStatus(IB &b, Thread thread, const IndexValidationArgs &k) {
  Value code = cI32(b, kNoStatus);
  for (const IndexValidationArgs::Rows &r : k.rows)
    code = checkRows(b, thread, r, code);
  for (Value lengths : k.cacheLengths)
    code = checkCacheLengths(b, thread, lengths, code);
  for (const IndexValidationArgs::Paged &p : k.paged)
    code = checkTableWidth(b, thread, p, code);
  for (const IndexValidationArgs::Paged &p : k.paged)
    code = checkPageIds(b, thread, p, code);
  for (const IndexValidationArgs::Rope &r : k.rope)
    code = checkPositions(b, thread, r, code);
  return code;
}

/// The workgroup buffer of the block's lowest status.
MemRefType lowestType(MLIRContext *context) {
  auto wgSpace =
      gpu::AddressSpaceAttr::get(context, gpu::AddressSpace::Workgroup);
  return MemRefType::get({1}, IntegerType::get(context, 32), AffineMap(),
                         wgSpace);
}

/// The checks in a block of `blockSize` threads (all of them run it), the
/// block's lowest status gathered in `lowest`.
void buildChecks(IB &b, KernelEmitter &e, const IndexValidationArgs &k,
                 Value lowest, int64_t blockSize) {
  BuilderScope scope(b);
  Idx thread = threadIdx(b), zeroIndex = cIndex(b, 0);
  ifThen(b, thread == 0,
         [&](IB &tb) { store(tb, cI32(tb, kNoStatus), lowest, zeroIndex); });
  gpu::BarrierOp::create(b);
  Idx code = threadStatus(b, {thread, blockSize}, k);
  ifThen(b, code != kNoStatus, [&](IB &fb) {
    memref::AtomicRMWOp::create(fb, arith::AtomicRMWKind::mins, code, lowest,
                                ValueRange{zeroIndex});
  });
  gpu::BarrierOp::create(b);
  ifThen(b, thread == 0, [&](IB &tb) {
    Idx status = load(tb, lowest, zeroIndex);
    ifThen(tb, status != kNoStatus, [&](IB &wb) {
      // Keep the status of an earlier refused call.
      auto update = memref::GenericAtomicRMWOp::create(wb, e.statusWord(wb),
                                                       ValueRange{zeroIndex});
      IB rb = IB::atBlockEnd(wb.getLoc(), update.getBody());
      BuilderScope updateScope(rb);
      Idx old = update.getCurrentValue();
      memref::AtomicYieldOp::create(rb, select(rb, old == 0, status, old));
    });
  });
}

} // namespace

IndexValidationArgs
IndexValidationArgs::of(IB &host, const IndexValueChecks &checks,
                        function_ref<Value(Value)> bufferOf) {
  BuilderScope scope(host);
  IndexValidationArgs args;
  // One pass over each row offsets tensor for all the tensors it indexes.
  llvm::MapVector<Value, SmallVector<Value>> rowsByOffsets;
  for (const IndexValueChecks::Rows &r : checks.rows)
    rowsByOffsets[bufferOf(r.rowOffsets)].push_back(
        rowsOf(host, r.rows, bufferOf));
  for (auto &[offsets, rows] : rowsByOffsets)
    args.rows.push_back({offsets, rows});
  for (Value lengths : checks.cacheLengths)
    args.cacheLengths.push_back(bufferOf(lengths));
  for (const IndexValueChecks::Paged &p : checks.paged)
    args.paged.push_back({bufferOf(p.rowOffsets), bufferOf(p.cacheLengths),
                          bufferOf(p.lookup), bufferOf(p.blocks), p.storeOnly});
  for (const IndexValueChecks::Rope &r : checks.rope)
    args.rope.push_back({bufferOf(r.rowOffsets), bufferOf(r.cacheLengths),
                         rowsOf(host, r.table, bufferOf)});
  return args;
}

void gpu_lowering::launchIndexValidation(KernelEmitter &e, IB &host,
                                         const IndexValidationArgs &checks) {
  BuilderScope scope(host);
  auto [kernel, b, k] =
      createKernel(e, host.getLoc(), "validate_indices", checks,
                   {lowestType(host.getContext())}, kThreads);
  buildChecks(b, e, k, kernel.getWorkgroupAttributions()[0], kThreads);
  e.launch(host, kernel, {cIndex(host, 1), cIndex(host, 1), cIndex(host, 1)},
           kThreads, argumentList(checks));
}

void gpu_lowering::addIndexValidationBlock(KernelEmitter &e,
                                           gpu::GPUFuncOp kernel,
                                           const IndexValidationArgs &checks) {
  Location loc = kernel.getLoc();
  IndexValidationArgs k = checks;
  k.forEach([&](Value &v) {
    if (!v)
      return;
    unsigned i = kernel.getNumArguments();
    (void)kernel.insertArgument(i, v.getType(), DictionaryAttr(), loc);
    v = kernel.getArgument(i);
  });
  Value lowest =
      kernel.addWorkgroupAttribution(lowestType(kernel.getContext()), loc);
  Block &entry = kernel.getBody().front();
  IB b(loc, OpBuilder::atBlockBegin(&entry));
  BuilderScope scope(b);
  Idx lastX = Idx(gpu::GridDimOp::create(b, gpu::Dimension::x).getResult()) - 1;
  auto branch = scf::IfOp::create(b, blockIdx(b, gpu::Dimension::x) == lastX,
                                  /*withElseRegion=*/true);
  // The kernel's own work, for every other block.
  Block *work = branch.elseBlock();
  work->getOperations().splice(
      work->getTerminator()->getIterator(), entry.getOperations(),
      std::next(branch->getIterator()), entry.getTerminator()->getIterator());
  IB cb(loc, OpBuilder::atBlockTerminator(branch.thenBlock()));
  BuilderScope checkScope(cb);
  Idx first = (blockIdx(cb, gpu::Dimension::y) == 0) &
              (blockIdx(cb, gpu::Dimension::z) == 0);
  int64_t blockSize = (*kernel.getKnownBlockSize())[0];
  ifThen(cb, first, [&](IB &fb) { buildChecks(fb, e, k, lowest, blockSize); });
}
