"""Compile every Triton kernel ahead of time for an H100 (sm_90), without a GPU.

Run as a script in a process *without* TRITON_INTERPRET (the interpreter replaces the kernels): it lowers each
kernel, for the dtypes and compile-time flags the launchers use, through Triton's whole pipeline to a cubin,
which catches the compile errors the interpreter hides, then reads each cubin's resource usage with the
cuobjdump that ships with Triton: registers per thread, and local memory (register spills), which must be 0.
Prints the largest register counts; exits non-zero on the first failure.
"""

import itertools
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

from fastgan.kernels import clamp, gan_loss, grad_norm_penalty, interpolate
from fastgan.kernels._tiles import row_tiles

TARGET = GPUTarget("cuda", 90, 32)
DTYPES = {"fp32": tl.float32, "fp16": tl.float16, "bf16": tl.bfloat16}
# The launchers' tilings for images (4 x 3M elements: long rows, several iterations) and 2-D toy data.
TILINGS = [row_tiles(4, 3 * 1024 * 1024), row_tiles(100000, 2)]


CUOBJDUMP = os.path.join(os.path.dirname(triton.backends.nvidia.__file__), "bin", "cuobjdump")


def compile_kernel(fn, args: dict, constexprs: dict) -> dict:
    """Compile one variant to a cubin; returns its resource usage, e.g. {"REG": 40, "LOCAL": 0, ...}."""
    constexprs = dict(constexprs)
    num_warps = constexprs.pop("num_warps")
    signature = {**args, **{name: "constexpr" for name in constexprs}}
    # Constants keyed by argument position, the form every Triton 3.x since 3.3 accepts.
    constants = {(fn.arg_names.index(name),): value for name, value in constexprs.items()}
    kernel = triton.compile(ASTSource(fn, signature=signature, constexprs=constants), target=TARGET,
                            options={"num_warps": num_warps})
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(kernel.asm["cubin"])
        f.flush()
        usage = subprocess.run([CUOBJDUMP, "-res-usage", f.name], capture_output=True, text=True, check=True).stdout
    return {key: int(value) for key, value in re.findall(r"(REG|STACK|LOCAL):(\d+)", usage)}


def variants():
    """(kernel, argument types, compile-time constants, num_warps) for every combination the launchers use."""
    for tiles, dt, index in itertools.product(TILINGS, DTYPES, ("i32", "i64")):
        rows = dict(BLOCK_B=tiles.BLOCK_B, BLOCK_D=tiles.BLOCK_D, ITERS=tiles.ITERS, num_warps=tiles.num_warps)
        p = f"*{dt}"
        yield interpolate._interpolate_fwd_kernel, dict(
            real_ptr=p, fake_ptr=p, alpha_ptr="*fp32", out_ptr=p, B="i32", D=index, real_stride=index,
            fake_stride=index, out_stride=index, n_chunks="i32"), dict(rows, ACC=tl.float32)
        for grad_real, grad_alpha in ((True, True), (False, True), (True, False)):
            yield interpolate._interpolate_bwd_kernel, dict(
                go_ptr=p, real_ptr=p, fake_ptr=p, alpha_ptr="*fp32", d_real_ptr=p, d_fake_ptr=p,
                alpha_partial_ptr="*fp32", B="i32", D=index, go_stride=index, real_stride=index,
                fake_stride=index, d_stride=index, n_chunks="i32"), dict(
                rows, GRAD_REAL=grad_real, GRAD_FAKE=True, GRAD_ALPHA=grad_alpha, ACC=tl.float32)
        for one_sided, single in itertools.product((False, True), (False, True)):
            yield grad_norm_penalty._gnp_fwd_kernel, dict(
                g_ptr=p, partial_ptr="*fp32", norms_ptr="*fp32", block_out_ptr="*fp32", B="i32", D=index,
                g_stride=index, n_chunks="i32", center="fp32"), dict(
                rows, ONE_SIDED=one_sided, ACC=tl.float32, SINGLE_CHUNK=single)
        yield grad_norm_penalty._gnp_bwd_kernel, dict(
            g_ptr=p, dg_ptr=p, norms_ptr="*fp32", gout_ptr="*fp32", B="i32", D=index, g_stride=index,
            dg_stride=index, n_chunks="i32", center="fp32"), dict(rows, ONE_SIDED=True, ACC=tl.float32)
        yield clamp._clamp_kernel, dict(addr_ptr="*i64", len_ptr="*i32", like_ptr=p, clip_value="fp32"), dict(
            BLOCK=clamp.BLOCK, ITERS=clamp.ITERS, num_warps=4)
    yield grad_norm_penalty._gnp_finish_kernel, dict(
        partial_ptr="*fp32", norms_ptr="*fp32", block_out_ptr="*fp32", B="i32", n_chunks="i32", center="fp32"), dict(
        BLOCK_B=1, BLOCK_C=512, ONE_SIDED=False, ACC=tl.float32, num_warps=4)
    seed = row_tiles(64, 784)  # fp64 (gradcheck) at the seed's MNIST batch
    yield grad_norm_penalty._gnp_fwd_kernel, dict(
        g_ptr="*fp64", partial_ptr="*fp64", norms_ptr="*fp64", block_out_ptr="*fp64", B="i32", D="i32",
        g_stride="i32", n_chunks="i32", center="fp32"), dict(
        BLOCK_B=seed.BLOCK_B, BLOCK_D=seed.BLOCK_D, ITERS=seed.ITERS, num_warps=seed.num_warps, ONE_SIDED=False,
        ACC=tl.float64, SINGLE_CHUNK=True)
    for (kind_a, kind_b), dt in itertools.product(((0, 0), (1, 1), (2, 2), (3, 3)), DTYPES):
        scalars = dict(n_a="i32", n_b="i32", stride_a="i32", stride_b="i32", p_a="fp32", w_a="fp32", p_b="fp32",
                       w_b="fp32")
        flags = dict(KIND_A=kind_a, KIND_B=kind_b, HAS_B=True, ACC=tl.float32, BLOCK=gan_loss.BLOCK, num_warps=4)
        yield gan_loss._gan_loss_fwd_kernel, dict(a_ptr=f"*{dt}", b_ptr=f"*{dt}", out_ptr="*fp32", **scalars), flags
        yield gan_loss._gan_loss_bwd_kernel, dict(
            a_ptr=f"*{dt}", b_ptr=f"*{dt}", da_ptr=f"*{dt}", db_ptr=f"*{dt}", gout_ptr="*fp32", **scalars), flags


def main() -> int:
    usage = []
    for fn, args, constexprs in variants():
        resources = compile_kernel(fn, args, constexprs)
        if resources.get("LOCAL", 0) or resources.get("STACK", 0):
            print(f"{fn.__name__} {args} {constexprs}: spills registers {resources}")
            return 1
        usage.append((resources["REG"], fn.__name__))
    for regs, name in sorted(set(usage), reverse=True)[:6]:
        print(f"  {name}: up to {regs} registers per thread, no spills")
    print(f"compiled {len(usage)} kernel variants for {TARGET.backend} sm_{TARGET.arch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
