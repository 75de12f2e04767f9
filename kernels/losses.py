"""GAN losses as one or two weighted means of elementwise terms (see ``fastgan.kernels.loss_terms``), fused.

Forward: one program per block of scores writes its share of the loss, and a one-program pass adds the shares
in a fixed order (deterministic, no atomics); when both outputs fit in one block each, a single program does
it all. Backward: one launch writing both gradients.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import triton
import triton.language as tl

from . import _preconditions
from ._tiles import cdiv, tl_dtype
from .accumulator import accumulator_dtype
from .launch import direct
from .loss_terms import AVERAGE, HINGE, LINEAR, LOGISTIC, NO_TERM, PAIRED, SEPARATE, SQUARE, Term

BLOCK = 1024
# The term kinds as compile-time constants the kernels can compare against.
_LINEAR = tl.constexpr(LINEAR)
_SQUARE = tl.constexpr(SQUARE)
_LOGISTIC = tl.constexpr(LOGISTIC)
_HINGE = tl.constexpr(HINGE)
_PAIRED = tl.constexpr(PAIRED)
_AVERAGE = tl.constexpr(AVERAGE)


@triton.jit
def _log1p(u):
    # Accurate log(1 + u) for small u without libdevice (which the interpreter lacks): Goldberg's trick.
    w = 1.0 + u
    exact = w == 1.0
    return tl.where(exact, u, tl.log(w) * u / tl.where(exact, 1.0, w - 1.0))


@triton.jit
def _term(x, p, KIND: tl.constexpr):
    if KIND == _LINEAR:
        y = x
    elif KIND == _SQUARE:
        y = (x - p) * (x - p)
    elif KIND == _LOGISTIC:
        # softplus(x) - p x, with softplus(x) = max(x, 0) + log1p(exp(-|x|)): exact max(-x, 0) for p = 1.
        y = tl.maximum(x, 0.0) - p * x + _log1p(tl.exp(-tl.abs(x)))
        y = tl.where(x != x, x, y)  # keep NaN (maximum may drop it)
    else:  # _HINGE
        z = 1.0 + p * x
        y = tl.where(z < 0.0, 0.0, z)  # NaN passes (the comparison is false)
    return y


@triton.jit
def _term_grad(x, p, KIND: tl.constexpr):
    if KIND == _LINEAR:
        d = tl.full(x.shape, 1.0, x.dtype)  # exact even for NaN x, as autograd's mean backward
    elif KIND == _SQUARE:
        d = 2.0 * (x - p)
    elif KIND == _LOGISTIC:
        # sigmoid(x) - p = (1 - p) sigmoid(x) - p sigmoid(-x), each sigmoid without cancellation.
        e = tl.exp(-tl.abs(x))
        up = x >= 0.0
        sig = tl.where(up, 1.0 / (1.0 + e), e / (1.0 + e))
        sig_neg = tl.where(up, e / (1.0 + e), 1.0 / (1.0 + e))
        d = (1.0 - p) * sig - p * sig_neg
        d = tl.where(x != x, x, d)
    else:  # _HINGE
        z = 1.0 + p * x
        d = tl.where(z > 0.0, p, 0.0)
        d = tl.where(z != z, z, d)
    return d


@triton.jit
def _mean(x_ptr, n, stride, ACC: tl.constexpr, BLOCK: tl.constexpr):
    # mean(x) in a fixed order.
    acc = tl.zeros([BLOCK], dtype=ACC)
    for start in range(0, n, BLOCK):
        offs = start + tl.arange(0, BLOCK).to(tl.int64)
        acc += tl.load(x_ptr + offs * stride, mask=offs < n, other=0.0).to(ACC)
    return tl.sum(acc, axis=0) / n


@triton.jit
def _terms_at(offs, x_ptr, n, stride, shift, y_ptr, y_stride, PAIRED_WITH_Y: tl.constexpr, ACC: tl.constexpr):
    # x - shift (SEPARATE: shift 0; AVERAGE: the other batch's mean), or x - y elementwise (PAIRED).
    mask = offs < n
    x = tl.load(x_ptr + offs * stride, mask=mask, other=0.0).to(ACC) - shift
    if PAIRED_WITH_Y:
        x -= tl.load(y_ptr + offs * y_stride, mask=mask, other=0.0).to(ACC)
    return x, mask


@triton.jit
def _block_terms(
    pid,
    x_ptr,
    n,
    stride,
    w,
    p,
    shift,
    y_ptr,
    y_stride,
    PAIRED_WITH_Y: tl.constexpr,
    ACC: tl.constexpr,
    KIND: tl.constexpr,
    BLOCK: tl.constexpr,
):
    # Block pid's share of w * mean(f(x)).
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    x, mask = _terms_at(offs, x_ptr, n, stride, shift, y_ptr, y_stride, PAIRED_WITH_Y, ACC)
    # Scaled in ACC: w / n first would round 1 / n to fp32, which fp64 inputs (gradcheck) must not see.
    return tl.sum(tl.where(mask, _term(x, p, KIND), 0.0), axis=0) * w / n


@direct
@triton.jit(do_not_specialize=["p_a", "w_a", "p_b", "w_b"])
def losses_fwd_kernel(
    a_ptr,  # first critic output, n_a values spaced stride_a apart
    b_ptr,  # second critic output (read when HAS_B)
    out_ptr,  # ACC: the 0-dim loss when SINGLE, else (n_blocks,) per-block partials
    stats_ptr,  # ACC (4,) from losses_average_kernel when STATS_GIVEN: mean(b), mean(a), then the gradient sums
    n_a,
    n_b,
    stride_a,
    stride_b,
    p_a,
    w_a,
    p_b,
    w_b,
    KIND_A: tl.constexpr,
    KIND_B: tl.constexpr,
    HAS_B: tl.constexpr,
    RELATION: tl.constexpr,
    STATS_GIVEN: tl.constexpr,
    SINGLE: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    # Programs [0, cdiv(n_a, BLOCK)) cover a, the rest cover b (PAIRED: only a's, each reading b's pairs); a
    # single program covers both. (The branches are chosen on constexprs first: code that reads b_ptr must not
    # even be compiled without b.) AVERAGE: a program computes both means itself when both batches fit in a
    # block, else reads them from the one-program pass before it.
    pid = tl.program_id(0)
    shift_a = 0.0
    shift_b = 0.0
    if RELATION == _AVERAGE:
        if STATS_GIVEN:
            shift_a = tl.load(stats_ptr)
            shift_b = tl.load(stats_ptr + 1)
        else:
            shift_a = _mean(b_ptr, n_b, stride_b, ACC, BLOCK)
            shift_b = _mean(a_ptr, n_a, stride_a, ACC, BLOCK)
    if RELATION == _PAIRED:
        part = _block_terms(pid, a_ptr, n_a, stride_a, w_a, p_a, 0.0, b_ptr, stride_b, True, ACC, KIND_A, BLOCK)
    elif SINGLE or not HAS_B:
        part = _block_terms(pid, a_ptr, n_a, stride_a, w_a, p_a, shift_a, b_ptr, 0, False, ACC, KIND_A, BLOCK)
        if SINGLE and HAS_B:
            part += _block_terms(pid, b_ptr, n_b, stride_b, w_b, p_b, shift_b, a_ptr, 0, False, ACC, KIND_B, BLOCK)
    else:
        blocks_a = tl.cdiv(n_a, BLOCK)
        if pid < blocks_a:
            part = _block_terms(pid, a_ptr, n_a, stride_a, w_a, p_a, shift_a, b_ptr, 0, False, ACC, KIND_A, BLOCK)
        else:
            part = _block_terms(
                pid - blocks_a, b_ptr, n_b, stride_b, w_b, p_b, shift_b, a_ptr, 0, False, ACC, KIND_B, BLOCK
            )
    tl.store(out_ptr + pid, part)


@direct
@triton.jit
def losses_finish_kernel(
    partial_ptr,  # ACC (n,) per-block partials
    out_ptr,  # ACC 0-dim loss, written
    n,
    BLOCK: tl.constexpr,
):
    # One program adds the partials in a fixed order: the same inputs give bitwise the same loss.
    acc = tl.zeros([BLOCK], dtype=partial_ptr.dtype.element_ty)
    for start in range(0, n, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        acc += tl.load(partial_ptr + offs, mask=offs < n, other=0.0)
    tl.store(out_ptr, tl.sum(acc, axis=0))


@triton.jit
def _grad_sum(x_ptr, n, stride, shift, p, ACC: tl.constexpr, KIND: tl.constexpr, BLOCK: tl.constexpr):
    # sum_i f'(x_i - shift) in a fixed order: what each score of the other batch gets through the mean it shifts by.
    acc = tl.zeros([BLOCK], dtype=ACC)
    for start in range(0, n, BLOCK):
        offs = start + tl.arange(0, BLOCK).to(tl.int64)
        mask = offs < n
        x = tl.load(x_ptr + offs * stride, mask=mask, other=0.0).to(ACC) - shift
        acc += tl.where(mask, _term_grad(x, p, KIND), 0.0)
    return tl.sum(acc, axis=0)


@direct
@triton.jit(do_not_specialize=["p_a", "p_b"])
def losses_average_kernel(
    a_ptr,  # as in forward
    b_ptr,
    stats_ptr,  # ACC (4,), written: mean(b), mean(a), then with GRADS sum f_a'(a - mean(b)), sum f_b'(b - mean(a))
    n_a,
    n_b,
    stride_a,
    stride_b,
    p_a,
    p_b,
    KIND_A: tl.constexpr,
    KIND_B: tl.constexpr,
    GRADS: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    # One program, before a relativistic-average loss over more than a block of scores: what every program of
    # the loss needs of the whole batches, computed once.
    mean_b = _mean(b_ptr, n_b, stride_b, ACC, BLOCK)
    mean_a = _mean(a_ptr, n_a, stride_a, ACC, BLOCK)
    tl.store(stats_ptr, mean_b)
    tl.store(stats_ptr + 1, mean_a)
    if GRADS:
        tl.store(stats_ptr + 2, _grad_sum(a_ptr, n_a, stride_a, mean_b, p_a, ACC, KIND_A, BLOCK))
        tl.store(stats_ptr + 3, _grad_sum(b_ptr, n_b, stride_b, mean_a, p_b, ACC, KIND_B, BLOCK))


@triton.jit
def _term_grad_block(
    x_ptr,
    dx_ptr,
    offs,
    n,
    stride,
    scale,
    p,
    shift,
    through_mean,
    y_ptr,
    y_stride,
    dy_ptr,
    PAIRED_WITH_Y: tl.constexpr,
    ACC: tl.constexpr,
    KIND: tl.constexpr,
):
    # d/dx_i of scale * sum f(x_i - shift) (or of x_i - y_i), plus through_mean (the other term's gradient
    # through the mean of x it is shifted by); PAIRED: dy_i = -dx_i.
    x, mask = _terms_at(offs, x_ptr, n, stride, shift, y_ptr, y_stride, PAIRED_WITH_Y, ACC)
    d = scale * _term_grad(x, p, KIND) + through_mean
    tl.store(dx_ptr + offs, d.to(dx_ptr.dtype.element_ty), mask=mask)
    if PAIRED_WITH_Y:
        tl.store(dy_ptr + offs, (-d).to(dy_ptr.dtype.element_ty), mask=mask)


@direct
@triton.jit(do_not_specialize=["p_a", "w_a", "p_b", "w_b"])
def losses_bwd_kernel(
    a_ptr,  # as in forward
    b_ptr,
    da_ptr,  # (n_a,) contiguous gradient of a, written
    db_ptr,  # (n_b,) contiguous gradient of b, written when HAS_B
    gout_ptr,  # one-element upstream gradient
    stats_ptr,  # as in forward
    n_a,
    n_b,
    stride_a,
    stride_b,
    p_a,
    w_a,
    p_b,
    w_b,
    KIND_A: tl.constexpr,
    KIND_B: tl.constexpr,
    HAS_B: tl.constexpr,
    RELATION: tl.constexpr,
    STATS_GIVEN: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    # Programs [0, cdiv(n_a, BLOCK)) cover a (PAIRED: and b's pairs), the rest cover b.
    pid = tl.program_id(0)
    blocks_a = tl.cdiv(n_a, BLOCK)
    gout = tl.load(gout_ptr).to(ACC)
    scale_a = gout * w_a / n_a
    if RELATION == _PAIRED:
        offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        _term_grad_block(
            a_ptr, da_ptr, offs, n_a, stride_a, scale_a, p_a, 0.0, 0.0, b_ptr, stride_b, db_ptr, True, ACC, KIND_A
        )
    else:
        shift_a = 0.0
        shift_b = 0.0
        from_b = 0.0  # what each a_i gets through mean(a) in b's term (AVERAGE)
        from_a = 0.0
        if RELATION == _AVERAGE:
            if STATS_GIVEN:
                shift_a = tl.load(stats_ptr)
                shift_b = tl.load(stats_ptr + 1)
                sum_a = tl.load(stats_ptr + 2)
                sum_b = tl.load(stats_ptr + 3)
            else:
                shift_a = _mean(b_ptr, n_b, stride_b, ACC, BLOCK)
                shift_b = _mean(a_ptr, n_a, stride_a, ACC, BLOCK)
                sum_a = _grad_sum(a_ptr, n_a, stride_a, shift_a, p_a, ACC, KIND_A, BLOCK)
                sum_b = _grad_sum(b_ptr, n_b, stride_b, shift_b, p_b, ACC, KIND_B, BLOCK)
            from_b = -(gout * w_b / n_b) * sum_b / n_a
            from_a = -scale_a * sum_a / n_b
        if pid < blocks_a:
            offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
            _term_grad_block(
                a_ptr, da_ptr, offs, n_a, stride_a, scale_a, p_a, shift_a, from_b, b_ptr, 0, db_ptr, False, ACC, KIND_A
            )
        elif HAS_B:
            offs = (pid - blocks_a).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
            _term_grad_block(
                b_ptr,
                db_ptr,
                offs,
                n_b,
                stride_b,
                gout * w_b / n_b,
                p_b,
                shift_b,
                from_a,
                a_ptr,
                0,
                da_ptr,
                False,
                ACC,
                KIND_B,
            )


def _check_outputs(a: torch.Tensor, b: torch.Tensor | None, relation: int) -> None:
    for name, x in (("a", a), ("b", b)):
        if x is None:
            continue
        _preconditions.tensor(name, x)
        if not (x.dim() == 1 or (x.dim() == 2 and x.shape[1] == 1)):
            raise ValueError(f"{name} must have shape (B,) or (B, 1), got {tuple(x.shape)}")
        _preconditions.same_device(name, x, "a", a)
    if relation != SEPARATE and b is None:
        raise ValueError("a relativistic loss (PAIRED or AVERAGE) needs b")
    if relation == PAIRED and b is not None and a.shape[0] != b.shape[0]:
        raise ValueError(f"PAIRED pairs a and b by position: sizes {a.shape[0]} and {b.shape[0]} differ")


def _launch_args(
    a: torch.Tensor, term_a: Term, b: torch.Tensor | None, term_b: Term | None, relation: int, check: bool
) -> tuple[tuple[Any, ...], tuple[Any, ...], dict[str, Any], int, torch.dtype]:
    """The key of a launch's plan (what everything else here depends on), the scalar arguments and compile-time
    constants both kernels share, their grid and the accumulator."""
    if check:
        _check_outputs(a, b, relation)
    # (B,) or (B, 1): B values spaced stride(0) apart.
    key = (
        a.shape[0],
        a.stride(0),
        a.dtype,
        *((0, 0, None) if b is None else (b.shape[0], b.stride(0), b.dtype)),
        term_a,
        term_b,
        relation,
    )
    return (key, *_shared_args(*key))


@functools.lru_cache(maxsize=256)
def _shared_args(
    n_a: int,
    s_a: int,
    a_dtype: torch.dtype,
    n_b: int,
    s_b: int,
    b_dtype: torch.dtype | None,
    term_a: Term,
    term_b: Term | None,
    relation: int,
) -> tuple[tuple[Any, ...], dict[str, Any], int, torch.dtype]:
    acc = accumulator_dtype(a_dtype, b_dtype)
    has_b = b_dtype is not None
    term_b = term_b or NO_TERM
    scalars = (n_a, n_b, s_a, s_b, term_a.param, term_a.weight, term_b.param, term_b.weight)
    # AVERAGE over more than a block of scores: the batch means (and gradient sums) from one pass before.
    stats_given = relation == AVERAGE and has_b and max(n_a, n_b) > BLOCK
    constants = dict(
        KIND_A=term_a.kind,
        KIND_B=term_b.kind,
        HAS_B=has_b,
        RELATION=relation,
        STATS_GIVEN=stats_given,
        ACC=tl_dtype(acc),
        BLOCK=BLOCK,
    )
    # PAIRED: one term over a's positions, each reading its pair in b.
    blocks = cdiv(n_a, BLOCK) + (cdiv(n_b, BLOCK) if has_b and relation != PAIRED else 0)
    return scalars, constants, blocks, acc


def _fwd_plan(key: tuple[Any, ...], single: bool):
    scalars, constants, blocks, _ = _shared_args(*key)
    return (1 if single else blocks,), scalars, dict(SINGLE=single, **constants)


def _finish_plan(blocks: int):
    return (1,), (blocks,), dict(BLOCK=BLOCK)


def _bwd_plan(key: tuple[Any, ...]):
    scalars, constants, blocks, _ = _shared_args(*key)
    return (blocks,), scalars, constants


def _average_stats(
    a: torch.Tensor,
    term_a: Term,
    b: torch.Tensor | None,
    term_b: Term | None,
    constants: dict[str, Any],
    acc: torch.dtype,
    grads: bool,
) -> torch.Tensor | None:
    """The (4,) batch statistics a relativistic-average loss over more than a block of scores reads, or None."""
    if not constants["STATS_GIVEN"]:
        return None
    assert b is not None and term_b is not None
    stats = torch.empty(4, dtype=acc, device=a.device)
    losses_average_kernel[(1,)](
        a,
        b,
        stats,
        a.shape[0],
        b.shape[0],
        a.stride(0),
        b.stride(0),
        term_a.param,
        term_b.param,
        KIND_A=term_a.kind,
        KIND_B=term_b.kind,
        GRADS=grads,
        ACC=constants["ACC"],
        BLOCK=BLOCK,
        num_warps=8,  # 4 spill a register (sm_90, hinge terms); one program has the whole GPU's time anyway
    )
    return stats


def losses_fwd(
    a: torch.Tensor,
    term_a: Term,
    b: torch.Tensor | None,
    term_b: Term | None,
    relation: int = SEPARATE,
    *,
    check: bool = True,
) -> torch.Tensor:
    """The 0-dim loss (fp32; fp64 if an input is fp64) of critic outputs ``a`` and optional ``b``: (B,) or (B, 1),
    related as ``relation`` says (``fastgan.kernels.loss_terms``: PAIRED takes ``term_a`` alone, on ``a - b``).

    Batches of up to BLOCK scores each take one program; larger ones one program per block of scores, then a
    finishing pass over the per-block partials (deterministic, no atomics). ``check=False`` skips the preconditions,
    for callers that established them (``fastgan``'s ops do).
    """
    key, _, constants, blocks, acc = _launch_args(a, term_a, b, term_b, relation, check)
    single = a.shape[0] <= BLOCK and (b is None or b.shape[0] <= BLOCK)
    out = a.new_empty((), dtype=acc)
    stats = _average_stats(a, term_a, b, term_b, constants, acc, grads=False)
    if single:
        losses_fwd_kernel.planned((key, True), (a, b, out, stats), _fwd_plan)
        return out
    partial = torch.empty(blocks, dtype=acc, device=a.device)
    losses_fwd_kernel.planned((key, False), (a, b, partial, stats), _fwd_plan)
    losses_finish_kernel.planned((blocks,), (partial, out), _finish_plan)
    return out


def losses_bwd(
    grad_out: torch.Tensor,
    a: torch.Tensor,
    term_a: Term,
    b: torch.Tensor | None,
    term_b: Term | None,
    relation: int = SEPARATE,
    *,
    check: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gradients of the loss with respect to ``a`` and ``b`` (shapes and dtypes of the inputs).

    ``grad_out``: the loss's one-element upstream gradient. ``check=False`` skips the preconditions, for callers that
    established them (``fastgan``'s ops do).
    """
    key, _, constants, _, acc = _launch_args(a, term_a, b, term_b, relation, check)
    if check:
        _preconditions.scalar("grad_out", grad_out, "a", a)
    # (B,) or (B, 1): a dense input's layout, else a contiguous one; either way element i at offset i.
    da = torch.empty_like(a)
    db = torch.empty_like(b) if b is not None else None
    stats = _average_stats(a, term_a, b, term_b, constants, acc, grads=True)
    losses_bwd_kernel.planned((key,), (a, b, da, db, grad_out, stats), _bwd_plan)
    return da, db
