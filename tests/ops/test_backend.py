import os

import torch

import fastgan
from fastgan.backend import requested_backend, uses_triton
from fastgan.kernels._preconditions import environment, runs_kernels


def test_auto_runs_triton_on_cuda_only(monkeypatch):
    monkeypatch.delenv("FASTGAN_BACKEND", raising=False)
    assert requested_backend() == "auto"
    assert not uses_triton(torch.device("cpu"))
    assert uses_triton(torch.device("cuda"))


def test_environment_variable_and_context_manager(monkeypatch, device):
    monkeypatch.setenv("FASTGAN_BACKEND", "torch")
    assert requested_backend() == "torch" and not uses_triton(torch.device("cuda"))
    with fastgan.use_backend("triton"):
        assert requested_backend() == "triton"
        with fastgan.use_backend("auto"):
            assert requested_backend() == "auto"
        assert uses_triton(device)  # CUDA, or the CPU under the interpreter as in these tests
    assert requested_backend() == "torch"


def test_both_backends_agree(device):
    real, fake = torch.randn(9, 5, device=device), torch.randn(9, 5, device=device)
    alpha = torch.rand(9, device=device)
    with fastgan.use_backend("torch"):
        eager = fastgan.interpolate(real, fake, alpha), fastgan.gradient_norm_penalty(real)
    with fastgan.use_backend("triton"):
        fused = fastgan.interpolate(real, fake, alpha), fastgan.gradient_norm_penalty(real)
    for a, b in zip(eager, fused):
        torch.testing.assert_close(a, b)


def test_the_backend_follows_the_environment_as_it_changes(monkeypatch):
    """Read at every call, set, changed and unset through os.environ (the fast read sees each change), with
    surrounding spaces and capitals allowed; the interpreter's variable likewise."""
    monkeypatch.delenv("FASTGAN_BACKEND", raising=False)
    assert requested_backend() == "auto"
    for value, expected in [("torch", "torch"), (" Triton ", "triton"), ("", "auto"), ("auto", "auto")]:
        os.environ["FASTGAN_BACKEND"] = value
        assert requested_backend() == expected
    del os.environ["FASTGAN_BACKEND"]
    assert requested_backend() == "auto" and environment("FASTGAN_BACKEND") is None
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert not runs_kernels(torch.device("cpu"))
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert runs_kernels(torch.device("cpu"))
    monkeypatch.setenv("FASTGAN_UNLISTED_VARIABLE", "x")  # one not kept encoded: os.environ's own read
    assert environment("FASTGAN_UNLISTED_VARIABLE") == "x"
