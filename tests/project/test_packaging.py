"""The wheel built from the repository: it holds every subpackage (the kernels under ``fastgan.kernels``), the
LICENSE and ``py.typed``, carries the one version string, and installs and imports in a fresh environment."""

import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import fastgan

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_installs_and_imports_in_a_fresh_environment(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("fastgan-*.whl")
    assert wheel.name.startswith(f"fastgan-{fastgan.__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    for required in (
        "fastgan/py.typed",
        "fastgan/kernels/norm_penalty.py",
        "fastgan/steps/runner.py",
        "fastgan/train/trainer.py",
        f"fastgan-{fastgan.__version__}.dist-info/licenses/LICENSE",
    ):
        assert required in names, required
    # A new environment that sees the running one's packages (torch) but not this checkout: its site-packages
    # listed in a .pth file (the running interpreter may itself be a venv, whose base Python lacks torch, so
    # --system-site-packages would not do), where the checkout's editable-install hook is not run.
    env = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    python = env / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    Path(purelib, "running-environment.pth").write_text("".join(p + "\n" for p in site.getsitepackages()))
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    probe = (
        "import fastgan, fastgan.kernels, fastgan.steps, fastgan.train, torch; "
        "x = torch.randn(4, 3); print(fastgan.__file__, fastgan.__version__, "
        "float(fastgan.interpolate(x, x, torch.rand(4)).sub(x).abs().max()))"
    )
    fresh = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of this checkout on the path
    out = subprocess.run(
        [str(python), "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=300, check=True, env=fresh
    ).stdout.split()
    assert Path(out[0]).is_relative_to(env) and out[1] == fastgan.__version__ and float(out[2]) == 0.0
