"""``prefetch(array, index)``: ask the CPU for ``array[index]``'s cache line ahead of its use
(of a 2-d array: row ``index``'s first element).

Kernels that look rows up in tables larger than the cache (a key per customer) wait on
memory for most of their time; asking for the line of a row some iterations ahead lets
those waits overlap (a probe of a 32 MB table from 10 M rows: 0.16-0.22 s -> 0.08 s).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def prefetch(typingctx, array, index):  # type: ignore[no-untyped-def]
    sig = types.void(array, index)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        array_type, index_type = signature.args
        ary = context.make_array(array_type)(context, builder, args[0])
        # the first element of row ``index`` (of a 2-d array: its first column)
        intp = context.get_value_type(types.intp)
        first = context.cast(builder, args[1], index_type, types.intp)
        indices = [first] + [intp(0)] * (array_type.ndim - 1)
        ptr = cgutils.get_item_pointer(context, builder, array_type, ary, indices, wraparound=False)
        byte_ptr = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_ptr, i32, i32, i32]), "llvm.prefetch.p0")
        # read, keep in all cache levels, data
        builder.call(fn, [builder.bitcast(ptr, byte_ptr), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen
