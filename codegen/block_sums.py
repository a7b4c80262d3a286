"""Sums in a fixed order that vectorizes: `add_block_sums(buf, m, sums)`.

Embedded verbatim in generated modules whose loops sum over samples, and importable
on its own for tests. A loop that stores each sample's outputs in a row of `buf`
(no loop-carried sum, so LLVM vectorizes it) hands the block to `add_block_sums`,
which adds each row in 32 lanes: value k goes to lane k mod 32, the lanes accumulate
in sample order as four vectors of 8 doubles (`_lane_sum`, an LLVM intrinsic:
lane-wise vector adds are IEEE adds, so the order is fixed, the same on every machine,
and vectorized whatever the target's vector width), then the vectors are added as
(v0 + v1) + (v2 + v3) and the 8 lanes as ((0+1)+(2+3))+((4+5)+(6+7)) into sums[row].
A strict running sum `s += v` is one add per sample on a chain of 4-cycle latency and
keeps the whole sample loop scalar (Numba may not reassociate it without fastmath);
this order is as fixed, and vectorizes. Run as plain Python (NUMBA_DISABLE_JIT=1),
`_lane_sum` is NumPy code that adds in the same order, so it gives the same bits.
"""

import numba

if numba.config.DISABLE_JIT:
    def _lane_sum(buf, j, groups):
        """The sum of buf[j, :32 * groups] in the order of the compiled intrinsic."""
        vectors = buf[j, :32 * groups].reshape(groups, 4, 8)
        acc = vectors[0].copy()
        for g in range(1, groups):
            acc += vectors[g]
        v = (acc[0] + acc[1]) + (acc[2] + acc[3])
        return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]))
else:
    from numba.core import types
    from numba.extending import intrinsic

    @intrinsic
    def _lane_sum(typingctx, buf, j, groups):
        """The sum of buf[j, :32 * groups] (groups >= 1; buf a C-contiguous 2-D float64
        array) in 32 lanes: four <8 x double> accumulators, lane-wise IEEE adds in sample
        order, then a fixed tree. Written as LLVM vectors because the loop vectorizer
        may not reorder a strict `s += v`, and the SLP vectorizer does not find the
        lanes in eight scalar accumulators."""
        if not (isinstance(buf, types.Array) and buf.ndim == 2 and buf.layout == "C"
                and buf.dtype == types.float64 and isinstance(j, types.Integer)
                and isinstance(groups, types.Integer)):
            return None

        def codegen(context, builder, signature, args):
            from numba.core import cgutils
            ir = cgutils.ir     # llvmlite's IR module, as Numba imports it

            i64 = ir.IntType(64)
            vec = ir.VectorType(ir.DoubleType(), 8)
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            row = context.cast(builder, args[1], signature.args[1], types.int64)
            count = context.cast(builder, args[2], signature.args[2], types.int64)
            width = builder.extract_value(ary.shape, 1)
            base = builder.gep(ary.data, [builder.mul(row, width)])

            def load(index):
                pointer = builder.bitcast(builder.gep(base, [index]), vec.as_pointer())
                return builder.load(pointer, align=8)

            accs = [cgutils.alloca_once_value(builder, load(ir.Constant(i64, 8 * q)))
                    for q in range(4)]
            with cgutils.for_range_slice(builder, ir.Constant(i64, 1), count,
                                          ir.Constant(i64, 1)) as (g, _):
                start = builder.mul(g, ir.Constant(i64, 32))
                for q, acc in enumerate(accs):
                    value = load(builder.add(start, ir.Constant(i64, 8 * q)))
                    builder.store(builder.fadd(builder.load(acc), value), acc)
            a = [builder.load(acc) for acc in accs]
            v = builder.fadd(builder.fadd(a[0], a[1]), builder.fadd(a[2], a[3]))
            lane = [builder.extract_element(v, ir.Constant(ir.IntType(32), i)) for i in range(8)]

            def pair(x, y):
                return builder.fadd(x, y)
            return pair(pair(pair(lane[0], lane[1]), pair(lane[2], lane[3])),
                        pair(pair(lane[4], lane[5]), pair(lane[6], lane[7])))

        return types.float64(buf, j, groups), codegen


@numba.njit(error_model="numpy")
def add_block_sums(buf, m, sums):
    """sums[j] += the sum of buf[j, :m] in the fixed lane order of `_lane_sum` (buf:
    C-contiguous, its width a multiple of 32; the entries past m are overwritten)."""
    rows = buf.shape[0]
    groups = (m + 31) // 32
    if groups == 0:
        return
    for j in range(rows):
        for k in range(m, 32 * groups):
            buf[j, k] = 0.0
        sums[j] += _lane_sum(buf, j, groups)
