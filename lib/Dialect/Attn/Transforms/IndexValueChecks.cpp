//===- IndexValueChecks.cpp - checks of the index tensors' values ---------===//
//
// Each check is a loop over the entries of an index tensor folding an i1,
// asserted like the other entry checks. All conditions are computed before
// any is acted upon, so a loop never relies on another check passing: it
// reads only elements inside its tensors, whatever their values.
//
//===----------------------------------------------------------------------===//

#include "EntryChecks.h"

#include "attn/Dialect/Attn/Transforms/IndexValueChecks.h"

#include "attn/Dialect/Attn/IR/AttnOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"
#include "mlir/Interfaces/DestinationStyleOpInterface.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::attn;

namespace {

using IB = ImplicitLocOpBuilder;
using Pred = arith::CmpIPredicate;

Value index(IB &b, int64_t v) { return arith::ConstantIndexOp::create(b, v); }

Value cmp(IB &b, Pred p, Value x, Value y) {
  return arith::CmpIOp::create(b, p, x, y);
}

Value dim(IB &b, Value t, int64_t d) { return tensor::DimOp::create(b, t, d); }

Value truth(IB &b) { return arith::ConstantIntOp::create(b, b.getI1Type(), 1); }

/// `!premise || conclusion`.
Value implies(IB &b, Value premise, Value conclusion) {
  return arith::OrIOp::create(b, arith::XOrIOp::create(b, premise, truth(b)),
                              conclusion);
}

/// Element `indices` of the i32 tensor `t`, as an index.
Value element(IB &b, Value t, ValueRange indices) {
  Value e = tensor::ExtractOp::create(b, t, indices);
  return arith::IndexCastOp::create(b, b.getIndexType(), e);
}

/// The fold of `step` over `i` in `[lo, hi)` starting from true: an scf.for
/// whose body gets the running value and returns the next one.
Value allOf(IB &b, Value lo, Value hi,
            function_ref<Value(IB &, Value i, Value ok)> step) {
  auto loop = scf::ForOp::create(
      b, lo, hi, index(b, 1), ValueRange{truth(b)},
      [&](OpBuilder &nested, Location loc, Value i, ValueRange carried) {
        IB body(loc, nested);
        scf::YieldOp::create(body, step(body, i, carried[0]));
      });
  return loop.getResult(0);
}

/// `row_offsets` start at 0, never decrease and end at `rows`.
Value rowOffsetsValid(IB &b, Value offsets, Value rows) {
  Value zero = index(b, 0);
  // Carries (all steps ok, previous entry); entry 0 must be 0.
  auto loop = scf::ForOp::create(
      b, zero, dim(b, offsets, 0), index(b, 1), ValueRange{truth(b), zero},
      [&](OpBuilder &nested, Location loc, Value i, ValueRange carried) {
        IB body(loc, nested);
        Value entry = element(body, offsets, i);
        Value ok = arith::SelectOp::create(
            body, cmp(body, Pred::eq, i, zero),
            cmp(body, Pred::eq, entry, zero),
            cmp(body, Pred::sge, entry, carried[1]));
        scf::YieldOp::create(
            body, ValueRange{arith::AndIOp::create(body, carried[0], ok),
                             entry});
      });
  Value notEmpty = cmp(b, Pred::sge, dim(b, offsets, 0), index(b, 1));
  Value endsAtRows = cmp(b, Pred::eq, loop.getResult(1), rows);
  return arith::AndIOp::create(
      b, arith::AndIOp::create(b, notEmpty, loop.getResult(0)), endsAtRows);
}

/// Every cache length is >= 0.
Value cacheLengthsValid(IB &b, Value lengths) {
  return allOf(b, index(b, 0), dim(b, lengths, 0),
               [&](IB &body, Value s, Value ok) -> Value {
                 Value len = element(body, lengths, s);
                 return arith::AndIOp::create(
                     body, ok, cmp(body, Pred::sge, len, index(body, 0)));
               });
}

/// A sequence of a ragged batch as an op sees it.
struct Sequence {
  Value cached;  // its cache length
  Value newRows; // its rows in this call
  /// Whether the call touches it: both counts sane and some new rows.
  Value active;
};

/// The index tensors of a ragged batch and the sequences that can be read
/// from them whatever their sizes.
struct Batch {
  Value rowOffsets, cacheLengths;

  /// The number of sequences whose entries are all inside the tensors.
  Value readableSequences(IB &b) const {
    Value fromOffsets =
        arith::SubIOp::create(b, dim(b, rowOffsets, 0), index(b, 1));
    return arith::MinSIOp::create(b, dim(b, cacheLengths, 0), fromOffsets);
  }

  Sequence sequence(IB &b, Value s) const {
    Value next = arith::AddIOp::create(b, s, index(b, 1));
    Value rows = arith::SubIOp::create(b, element(b, rowOffsets, next),
                                       element(b, rowOffsets, s));
    Value cached = element(b, cacheLengths, s);
    Value zero = index(b, 0);
    Value active = arith::AndIOp::create(b, cmp(b, Pred::sge, cached, zero),
                                         cmp(b, Pred::sgt, rows, zero));
    return {cached, rows, active};
  }
};

/// What a paged op reads or writes: the pages of positions `[first, end)`
/// of each sequence through `lookup` into the `pages` pages of `blocks`.
struct PagedAccess {
  Batch batch;
  Value lookup, blocks;
  /// A store touches the new positions only; attention reads every key.
  bool storeOnly;

  /// The pages `[first, end)` of the positions `s` touches.
  std::pair<Value, Value> pageRange(IB &b, const Sequence &s) const {
    Value pageSize = dim(b, blocks, 3);
    Value end = arith::AddIOp::create(b, s.cached, s.newRows);
    Value first = storeOnly ? s.cached : index(b, 0);
    return {arith::DivSIOp::create(b, first, pageSize),
            arith::CeilDivSIOp::create(b, end, pageSize)};
  }

  Value readableSequences(IB &b) const {
    return arith::MinSIOp::create(b, batch.readableSequences(b),
                                  dim(b, lookup, 0));
  }

  /// Every active sequence's pages fit in its lookup-table row.
  Value tableWideEnough(IB &b) const {
    Value width = dim(b, lookup, 1);
    return allOf(b, index(b, 0), readableSequences(b),
                 [&](IB &body, Value s, Value ok) -> Value {
                   Sequence seq = batch.sequence(body, s);
                   Value end = pageRange(body, seq).second;
                   Value fits = implies(body, seq.active,
                                        cmp(body, Pred::sle, end, width));
                   return arith::AndIOp::create(body, ok, fits);
                 });
  }

  /// Every page id an active sequence touches (within its table row) is in
  /// `[0, P)`.
  Value pageIdsValid(IB &b) const {
    Value width = dim(b, lookup, 1);
    Value numPages = dim(b, blocks, 0);
    return allOf(
        b, index(b, 0), readableSequences(b),
        [&](IB &body, Value s, Value ok) -> Value {
          Sequence seq = batch.sequence(body, s);
          auto [first, end] = pageRange(body, seq);
          Value last = arith::SelectOp::create(
              body, seq.active, arith::MinSIOp::create(body, end, width),
              first);
          Value pagesOk =
              allOf(body, first, last, [&](IB &inner, Value p, Value ok) {
                Value id = element(inner, lookup, {s, p});
                Value inRange = arith::AndIOp::create(
                    inner, cmp(inner, Pred::sge, id, index(inner, 0)),
                    cmp(inner, Pred::slt, id, numPages));
                return Value(arith::AndIOp::create(inner, ok, inRange));
              });
          return arith::AndIOp::create(body, ok, pagesOk);
        });
  }
};

/// Every active sequence's last position is inside a RoPE table of
/// `tableRows` rows.
Value positionsInTable(IB &b, const Batch &batch, Value tableRows) {
  return allOf(b, index(b, 0), batch.readableSequences(b),
               [&](IB &body, Value s, Value ok) -> Value {
                 Sequence seq = batch.sequence(body, s);
                 Value end = arith::AddIOp::create(body, seq.cached, seq.newRows);
                 Value inside = implies(body, seq.active,
                                        cmp(body, Pred::sle, end, tableRows));
                 return arith::AndIOp::create(body, ok, inside);
               });
}

/// The tensor with the same rows (dim 0) as the result `t` of an op that
/// keeps its input's rows, or null.
Value sameRowsSource(OpResult t) {
  auto keepsRows = [](auto reshape) -> Value {
    return reshape.getReassociationIndices().front().size() == 1
               ? reshape.getSrc()
               : Value();
  };
  return llvm::TypeSwitch<Operation *, Value>(t.getOwner())
      .Case([](tensor::CastOp op) { return op.getSource(); })
      .Case([&](tensor::CollapseShapeOp op) { return keepsRows(op); })
      .Case([&](tensor::ExpandShapeOp op) { return keepsRows(op); })
      .Case<LinearOp, RMSNormOp, RopeOp, QKVProjectionOp>(
          [](auto op) { return op.getInput(); })
      .Case<PagedFlashAttentionOp, FlashAttentionOp>(
          [](auto op) { return op.getQuery(); })
      .Case([&](RopeStoreOp op) {
        return t == op.getQResult() ? op.getQ() : Value();
      })
      .Case([](tensor::EmptyOp op) -> Value {
        auto size = op.getDynamicSize(0).getDefiningOp<tensor::DimOp>();
        std::optional<int64_t> d = size ? size.getConstantIndex() : std::nullopt;
        return d == 0 ? size.getSource() : Value();
      })
      // linalg ops (an unfused bias add, a clamp): the rows of their init.
      .Case([&](DestinationStyleOpInterface op) {
        return op.getTiedOpOperand(t)->get();
      })
      .Default([](Operation *) { return Value(); });
}

/// The tensor whose rows (dim 0) `t` has that is known at the start of the
/// function: one of static rows or an argument; null if there is none.
Value rowsRoot(Value t) {
  while (t && cast<RankedTensorType>(t.getType()).isDynamicDim(0) &&
         !isa<BlockArgument>(t))
    t = sameRowsSource(cast<OpResult>(t));
  return t;
}

/// The rows of `root` (see rowsRoot) at `b`'s insertion point.
Value rowsAtEntry(IB &b, Value root) {
  auto type = cast<RankedTensorType>(root.getType());
  return type.isDynamicDim(0) ? dim(b, root, 0)
                              : index(b, type.getDimSize(0));
}

/// The index checks of a function, collected from its ops and deduplicated.
struct Collector {
  /// (row offsets, the rows root of a tensor they index).
  llvm::SetVector<std::pair<BlockArgument, Value>> rows;
  /// A tensor indexed by row offsets without a rows root.
  Value unknownRows;
  llvm::SetVector<BlockArgument> lengths;
  /// (row offsets, cache lengths, lookup table, blocks) of stores and of
  /// attention.
  using PagedOperands =
      std::tuple<BlockArgument, BlockArgument, BlockArgument, BlockArgument>;
  llvm::SetVector<PagedOperands> stores, reads;
  /// (row offsets, cache lengths, RoPE table).
  llvm::SetVector<std::tuple<BlockArgument, BlockArgument, Value>> rope;

  void addRows(Value offsets, ValueRange indexed) {
    BlockArgument arg = tensorArgument(offsets);
    if (!arg)
      return;
    for (Value t : indexed) {
      if (Value root = rowsRoot(t))
        rows.insert({arg, root});
      else
        unknownRows = t;
    }
  }

  /// The checks of an op reading positions through `offsets` / `lengths`.
  void addPositions(Value offsets, Value lengths, ValueRange indexed) {
    addRows(offsets, indexed);
    if (BlockArgument arg = tensorArgument(lengths))
      this->lengths.insert(arg);
  }

  void addPaged(Value offsets, Value lengths, Value lookup, Value blocks,
                bool storeOnly) {
    BlockArgument o = tensorArgument(offsets), l = tensorArgument(lengths),
                  t = tensorArgument(lookup), p = inPlaceSource(blocks);
    if (o && l && t && p)
      (storeOnly ? stores : reads).insert({o, l, t, p});
  }

  void addRope(Value offsets, Value lengths, Value table) {
    BlockArgument o = tensorArgument(offsets), l = tensorArgument(lengths);
    if (o && l)
      rope.insert({o, l, table});
  }

  void collect(Operation *op) {
    llvm::TypeSwitch<Operation *>(op)
        .Case([&](KVCacheStoreOp op) {
          addPositions(op.getRowOffsets(), op.getCacheLengths(),
                       {op.getKey(), op.getValue()});
          addPaged(op.getRowOffsets(), op.getCacheLengths(),
                   op.getLookupTable(), op.getBlocks(), /*storeOnly=*/true);
        })
        .Case([&](RopeStoreOp op) {
          addPositions(op.getRowOffsets(), op.getCacheLengths(),
                       {op.getQ(), op.getK(), op.getV()});
          addPaged(op.getRowOffsets(), op.getCacheLengths(),
                   op.getLookupTable(), op.getBlocks(), /*storeOnly=*/true);
          addRope(op.getRowOffsets(), op.getCacheLengths(), op.getFreqs());
        })
        .Case([&](PagedFlashAttentionOp op) {
          addPositions(op.getRowOffsets(), op.getCacheLengths(),
                       {op.getQuery()});
          addPaged(op.getRowOffsets(), op.getCacheLengths(),
                   op.getLookupTable(), op.getBlocks(), /*storeOnly=*/false);
        })
        .Case([&](RopeOp op) {
          addPositions(op.getRowOffsets(), op.getCacheLengths(),
                       {op.getInput()});
          addRope(op.getRowOffsets(), op.getCacheLengths(), op.getFreqs());
        })
        .Case([&](FlashAttentionOp op) {
          addRows(op.getQRowOffsets(), {op.getQuery()});
          addRows(op.getKvRowOffsets(), {op.getKey(), op.getValue()});
        });
  }
};

/// `table` if its rows are static, else the argument it is; null if neither.
Value tableAtEntry(Value table) {
  if (!cast<RankedTensorType>(table.getType()).isDynamicDim(0))
    return table;
  return tensorArgument(table);
}

} // namespace

FailureOr<IndexValueChecks>
mlir::attn::IndexValueChecks::collect(func::FuncOp func) {
  Collector c;
  func.walk([&](Operation *op) { c.collect(op); });
  if (c.unknownRows)
    return emitError(c.unknownRows.getLoc())
           << "cannot check the row offsets of this tensor at the start of "
              "the function: its number of rows is not an argument's; pass "
              "runtime-checks=false to skip the checks";
  IndexValueChecks checks;
  for (auto [offsets, rows] : c.rows)
    checks.rows.push_back({offsets, rows});
  checks.cacheLengths.assign(c.lengths.begin(), c.lengths.end());
  // Attention reads every page a store to the same cache writes.
  for (const Collector::PagedOperands &store : c.stores)
    if (!c.reads.contains(store)) {
      auto [offsets, lengths, lookup, blocks] = store;
      checks.paged.push_back({offsets, lengths, lookup, blocks,
                              /*storeOnly=*/true});
    }
  for (auto [offsets, lengths, lookup, blocks] : c.reads)
    checks.paged.push_back({offsets, lengths, lookup, blocks,
                            /*storeOnly=*/false});
  for (auto [offsets, lengths, table] : c.rope) {
    Value atEntry = tableAtEntry(table);
    if (!atEntry)
      return emitError(table.getLoc())
             << "cannot check positions against this RoPE table at the start "
                "of the function: its size is dynamic and it is not an "
                "argument; pass runtime-checks=false to skip the checks";
    checks.rope.push_back({offsets, lengths, atEntry});
  }
  return checks;
}

LogicalResult mlir::attn::insertIndexValueChecks(func::FuncOp func,
                                                 OpBuilder &builder) {
  FailureOr<IndexValueChecks> checks = IndexValueChecks::collect(func);
  if (failed(checks))
    return failure();
  IB b(func.getLoc(), builder);
  for (const IndexValueChecks::Rows &r : checks->rows)
    assertOrReport(b, b.getLoc(),
                   rowOffsetsValid(b, r.rowOffsets, rowsAtEntry(b, r.rows)),
                   EntryStatus::BadRowOffsets);
  for (Value lengths : checks->cacheLengths)
    assertOrReport(b, b.getLoc(), cacheLengthsValid(b, lengths),
                   EntryStatus::NegativeCacheLength);
  auto access = [](const IndexValueChecks::Paged &p) {
    return PagedAccess{{p.rowOffsets, p.cacheLengths}, p.lookup, p.blocks,
                       p.storeOnly};
  };
  for (const IndexValueChecks::Paged &p : checks->paged)
    assertOrReport(b, b.getLoc(), access(p).tableWideEnough(b),
                   EntryStatus::LookupTableTooNarrow);
  for (const IndexValueChecks::Paged &p : checks->paged)
    assertOrReport(b, b.getLoc(), access(p).pageIdsValid(b),
                   EntryStatus::PageOutOfRange);
  for (const IndexValueChecks::Rope &r : checks->rope)
    assertOrReport(b, b.getLoc(),
                   positionsInTable(b, Batch{r.rowOffsets, r.cacheLengths},
                                    rowsAtEntry(b, r.table)),
                   EntryStatus::PositionOutsideRopeTable);
  return success();
}
