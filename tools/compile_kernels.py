"""Compile every Triton kernel ahead of time for an H100 (sm_90), without a GPU, as real launches specialize it.

Run as a script in a process *without* TRITON_INTERPRET (the interpreter replaces the kernels): it lowers each
kernel, for the dtypes, compile-time flags and tilings the launchers use, through Triton's whole pipeline to a
cubin, which catches the compile errors the interpreter hides, then reads each cubin's resource usage with the
cuobjdump that ships with Triton: registers per thread, and stack and local memory (register spills), which
must be 0. Launches specialize arguments: pointers (torch allocations are 16-byte aligned) and integers
divisible by 16 are compiled with that divisibility, which is what lets the loads become 16-byte vector loads;
each kernel is compiled both with those hints (aligned data, the common case) and without (odd sizes and
offsets), so the figures describe what launches run. Prints the largest register counts; exits non-zero on the
first failure.
"""

import itertools
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile

import triton
import triton.backends.nvidia
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from fastgan.kernels import augment, clipping, interpolation, losses, norm_penalty
from fastgan.kernels._tiles import row_tiles

TARGET = GPUTarget("cuda", 90, 32)
DTYPES = {"fp32": tl.float32, "fp16": tl.float16, "bf16": tl.bfloat16}
# The launchers' tilings: long image rows (several iterations, several chunks), the reference's MNIST batch, many
# tiny 2-D rows, and a prime-ish width.
TILINGS = [
    row_tiles(4, 3 * 1024 * 1024),
    row_tiles(256, 3 * 128 * 128),
    row_tiles(64, 784),
    row_tiles(100000, 2),
    row_tiles(17, 1041),
]
CUOBJDUMP = os.path.join(os.path.dirname(triton.backends.nvidia.__file__), "bin", "cuobjdump")
DIVISIBLE_BY_16 = [["tt.divisibility", 16]]


def compile_kernel(fn, args: dict, constexprs: dict, aligned: bool) -> dict:
    """Compile one variant to a cubin; returns its resource usage, e.g. {"REG": 40, "STACK": 0, "LOCAL": 0}.

    ``aligned``: pointers and integer sizes/strides carry the divisibility-by-16 that launches on aligned data
    specialize them with (as the launcher does when ``data_ptr() % 16 == 0`` and ``value % 16 == 0``).
    """
    constexprs = dict(constexprs)
    num_warps = constexprs.pop("num_warps")
    signature = {**args, **{name: "constexpr" for name in constexprs}}
    # Constants keyed by argument position, the form every Triton 3.x since 3.3 accepts.
    constants = {(fn.arg_names.index(name),): value for name, value in constexprs.items()}
    attrs = {}
    if aligned:
        attrs = {
            (fn.arg_names.index(name),): DIVISIBLE_BY_16
            for name, kind in args.items()
            if kind.startswith("*") or name in ("D",) or name.endswith("stride")
        }
    kernel = triton.compile(
        ASTSource(fn, signature=signature, constexprs=constants, attrs=attrs),
        target=TARGET,
        options={"num_warps": num_warps},
    )
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(kernel.asm["cubin"])
        f.flush()
        usage = subprocess.run([CUOBJDUMP, "-res-usage", f.name], capture_output=True, text=True, check=True).stdout
    return {key: int(value) for key, value in re.findall(r"(REG|STACK|LOCAL):(\d+)", usage)}


def _row_variants():
    for tiles, dt, index in itertools.product(TILINGS, DTYPES, ("i32", "i64")):
        rows = dict(BLOCK_B=tiles.BLOCK_B, BLOCK_D=tiles.BLOCK_D, ITERS=tiles.ITERS, num_warps=tiles.num_warps)
        p = f"*{dt}"
        yield (
            interpolation.interpolation_fwd_kernel,
            dict(
                real_ptr=p,
                fake_ptr=p,
                alpha_ptr="*fp32",
                out_ptr=p,
                B="i32",
                D=index,
                real_stride=index,
                fake_stride=index,
                out_stride=index,
                n_chunks="i32",
            ),
            dict(rows, ACC=tl.float32),
        )
        for grad_real, grad_fake, grad_alpha in (
            (True, True, True),
            (False, True, True),
            (True, True, False),
            (True, False, False),
            (False, False, True),
        ):
            # Gradients nobody asked for are None pointers, which Triton types as "constexpr".
            absent = {
                name: None
                for name, wanted in (
                    ("d_real_ptr", grad_real),
                    ("d_fake_ptr", grad_fake),
                    ("alpha_partial_ptr", grad_alpha),
                )
                if not wanted
            }
            yield (
                interpolation.interpolation_bwd_kernel,
                {
                    **dict(
                        go_ptr=p,
                        real_ptr=p,
                        fake_ptr=p,
                        alpha_ptr="*fp32",
                        d_real_ptr=p,
                        d_fake_ptr=p,
                        alpha_partial_ptr="*fp32",
                        B="i32",
                        D=index,
                        go_stride=index,
                        real_stride=index,
                        fake_stride=index,
                        d_stride=index,
                        n_chunks="i32",
                    ),
                    **dict.fromkeys(absent, "constexpr"),
                },
                dict(rows, GRAD_REAL=grad_real, GRAD_FAKE=grad_fake, GRAD_ALPHA=grad_alpha, ACC=tl.float32, **absent),
            )
        for one_sided, single in itertools.product((False, True), (False, True)):
            yield (
                norm_penalty.penalty_fwd_kernel,
                dict(
                    g_ptr=p,
                    partial_ptr="*fp32",
                    norms_ptr="*fp32",
                    block_out_ptr="*fp32",
                    B="i32",
                    D=index,
                    g_stride=index,
                    n_chunks="i32",
                    center="fp32",
                ),
                dict(rows, ONE_SIDED=one_sided, ACC=tl.float32, SINGLE_CHUNK=single),
            )
        for one_sided in (False, True):
            yield (
                norm_penalty.penalty_bwd_kernel,
                dict(
                    g_ptr=p,
                    dg_ptr=p,
                    norms_ptr="*fp32",
                    gout_ptr="*fp32",
                    B="i32",
                    D=index,
                    g_stride=index,
                    dg_stride=index,
                    n_chunks="i32",
                    center="fp32",
                ),
                dict(rows, ONE_SIDED=one_sided, ACC=tl.float32),
            )


def _other_variants():
    for dt in DTYPES:
        yield (
            clipping.clipping_kernel,
            dict(addr_ptr="*i64", len_ptr="*i32", like_ptr=f"*{dt}", clip_value="fp32"),
            dict(BLOCK=clipping.BLOCK, ITERS=clipping.ITERS, num_warps=4),
        )
    for block_b, block_c in ((1, 1024), (1, 8), (1, 2)):
        yield (
            norm_penalty.penalty_finish_kernel,
            dict(partial_ptr="*fp32", norms_ptr="*fp32", block_out_ptr="*fp32", B="i32", n_chunks="i32", center="fp32"),
            dict(BLOCK_B=block_b, BLOCK_C=block_c, ONE_SIDED=False, ACC=tl.float32, num_warps=4),
        )
    mnist = row_tiles(64, 784)  # fp64 (gradcheck) at the reference's MNIST batch
    for single in (False, True):
        yield (
            norm_penalty.penalty_fwd_kernel,
            dict(
                g_ptr="*fp64",
                partial_ptr="*fp64",
                norms_ptr="*fp64",
                block_out_ptr="*fp64",
                B="i32",
                D="i32",
                g_stride="i32",
                n_chunks="i32",
                center="fp32",
            ),
            dict(
                BLOCK_B=mnist.BLOCK_B,
                BLOCK_D=mnist.BLOCK_D,
                ITERS=mnist.ITERS,
                num_warps=mnist.num_warps,
                ONE_SIDED=False,
                ACC=tl.float64,
                SINGLE_CHUNK=single,
            ),
        )
    scalars = dict(n_a="i32", n_b="i32", stride_a="i32", stride_b="i32", p_a="fp32", w_a="fp32", p_b="fp32", w_b="fp32")
    kinds = ((0, 0), (1, 1), (2, 2), (3, 3))
    # (relation, has b, statistics given): every loss scoring samples alone, with and without b; RpGAN's pairs;
    # RaGAN's average within a block and over more (its statistics from losses_average_kernel).
    relations = ((0, True, False), (0, False, False), (1, True, False), (2, True, False), (2, True, True))
    for (kind_a, kind_b), dt, single, (relation, has_b, given) in itertools.product(
        kinds, DTYPES, (True, False), relations
    ):
        flags = dict(
            KIND_A=kind_a,
            KIND_B=kind_b,
            HAS_B=has_b,
            RELATION=relation,
            STATS_GIVEN=given,
            ACC=tl.float32,
            BLOCK=losses.BLOCK,
            num_warps=4,
        )
        # Without b (or without statistics) the launcher passes None for its pointers, which Triton types as
        # "constexpr".
        b = f"*{dt}" if has_b else "constexpr"
        stats = "*fp32" if given else "constexpr"
        nones = {**({} if has_b else {"b_ptr": None}), **({} if given else {"stats_ptr": None})}
        yield (
            losses.losses_fwd_kernel,
            dict(a_ptr=f"*{dt}", b_ptr=b, out_ptr="*fp32", stats_ptr=stats, **scalars),
            dict(flags, SINGLE=single, **nones),
        )
        if single:
            yield (
                losses.losses_bwd_kernel,
                dict(a_ptr=f"*{dt}", b_ptr=b, da_ptr=f"*{dt}", db_ptr=b, gout_ptr="*fp32", stats_ptr=stats, **scalars),
                dict(flags, **nones, **({} if has_b else {"db_ptr": None})),
            )
        if given and single:
            for grads in (False, True):
                yield (
                    losses.losses_average_kernel,
                    dict(a_ptr=f"*{dt}", b_ptr=b, stats_ptr="*fp32", **{k: scalars[k] for k in scalars if k[0] != "w"}),
                    dict(KIND_A=kind_a, KIND_B=kind_b, GRADS=grads, ACC=tl.float32, BLOCK=losses.BLOCK, num_warps=8),
                )
    yield (
        losses.losses_finish_kernel,
        dict(partial_ptr="*fp32", out_ptr="*fp32", n="i32"),
        dict(BLOCK=losses.BLOCK, num_warps=4),
    )


def _augment_variants():
    # RGB images (one sample a program; 64 channels tile alike), 1-channel 2 x 3 images (many a program), a
    # megapixel image (the widest read of the partial sums).
    shapes = ((64, 3, 64 * 64), (70000, 1, 6), (1, 3, 1024 * 1024))
    tiles = {(*augment.augment_tiles(*shape), shape[2]) for shape in shapes}
    strides = ("s_b", "s_c", "s_h", "s_w")
    ints = dict.fromkeys(("B", "C", "H", "W", *strides), "i32")
    geometry = dict.fromkeys(("SHIFT_H", "SHIFT_W", "CUT_H", "CUT_W"), "i32")
    for dt, (block_b, block_c, block_p, pixels) in itertools.product([*DTYPES, "fp64"], tiles):
        block_s = augment.partial_block(-(-pixels // block_p), block_b)
        acc = tl.float64 if dt == "fp64" else tl.float32
        sizes = dict(BLOCK_B=block_b, BLOCK_C=block_c, BLOCK_P=block_p, ACC=acc, num_warps=augment._NUM_WARPS)
        pointers = dict(src_ptr=f"*{dt}", params_ptr="*fp32", partial_ptr=f"*{acc}")
        for weighted in (False, True):
            yield (
                augment.augment_sums_kernel,
                dict(**pointers, **ints, **geometry, n_blocks="i32"),
                dict(sizes, WEIGHTED=weighted),
            )
        # The forward, its linear part (the adjoint's backward) and the adjoint, with and without the colour ops.
        outs = dict.fromkeys(("o_b", "o_c", "o_h", "o_w"), "i32")
        for (adjoint, bias), color in itertools.product(((False, True), (False, False), (True, False)), (True, False)):
            yield (
                augment.augment_kernel,
                dict(**pointers, out_ptr=f"*{dt}", **ints, **outs, **geometry, N="i32", n_blocks="i32"),
                dict(sizes, ADJOINT=adjoint, BIAS=bias, COLOR=color, BLOCK_S=block_s),
            )


def variants():
    """(kernel, argument types, compile-time constants with num_warps) for every combination the launchers use."""
    yield from _row_variants()
    yield from _other_variants()
    yield from _augment_variants()


def _jobs() -> list:
    return list(itertools.product(variants(), (True, False)))


def _compile(index: int) -> tuple:
    # Jobs travel by index: kernels cannot be pickled, so each worker rebuilds the same list.
    (kernel, args, constexprs), aligned = _jobs()[index]
    return kernel.fn.__name__, args, constexprs, aligned, compile_kernel(kernel.fn, args, constexprs, aligned)


def main() -> int:
    usage = []
    # Every variant compiles independently: one process per core.
    with multiprocessing.get_context("spawn").Pool(os.cpu_count()) as pool:
        for name, args, constexprs, aligned, resources in pool.imap_unordered(_compile, range(len(_jobs())), 4):
            if resources.get("LOCAL", 0) or resources.get("STACK", 0):
                print(f"{name} {args} {constexprs} aligned={aligned}: spills registers {resources}")
                return 1
            usage.append((resources["REG"], name, aligned))
    most: dict[tuple, int] = {}
    for regs, name, aligned in usage:
        most[name, aligned] = max(regs, most.get((name, aligned), 0))
    for (name, aligned), regs in sorted(most.items(), key=lambda item: -item[1]):
        print(f"  {name} ({'aligned' if aligned else 'unaligned'}): up to {regs} registers per thread, no spills")
    print(f"compiled {len(usage)} kernel variants for {TARGET.backend} sm_{TARGET.arch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
