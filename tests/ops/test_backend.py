import torch

import fastgan
from fastgan.backend import requested_backend, uses_triton


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
