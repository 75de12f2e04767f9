"""A stand-in for Triton's launch path that compiles nothing: each "compiled kernel" checks, at every launch, that
Triton would have compiled it for the arguments it is launched with, so that a wrong cache hit of a direct
launch fails the test that made it. Without a GPU nothing compiles; the real compiled kernels are launched both
ways and compared in tests/gpu/test_gpu.py."""

from triton._C.libtriton import native_specialize_impl
from triton.backends.nvidia.compiler import CUDABackend
from triton.runtime.jit import JITFunction

from fastgan.kernels import launch


def jit_form(kernel: launch.DirectKernel) -> JITFunction:
    """The kernel as Triton compiles it (under the interpreter ``kernel.fn`` is the interpreted function)."""
    fn = kernel.fn
    return fn if isinstance(fn, JITFunction) else JITFunction(fn.fn, **fn.kwargs)


def triton_specialization(jit: JITFunction, values, num_warps) -> tuple:
    """What Triton keys its compiled kernels on for these arguments (in signature order, constexprs included;
    Triton compares the specialization as a string, so constexprs 1 and True differ)."""
    parts = []
    for p, v in zip(jit.params, values):
        if p.is_constexpr:
            parts.append(("constexpr", v))
        else:
            parts.append(
                native_specialize_impl(
                    CUDABackend, v, p.is_const, not p.do_not_specialize, not p.do_not_specialize_on_alignment
                )
            )
    return str(parts), num_warps


class StandInCompiled:
    """A compiled kernel that checks, at each launch, that Triton would have compiled it for these arguments."""

    def __init__(self, jit, specialization):
        self.jit, self.specialization = jit, specialization
        self.function, self.packed_metadata = object(), object()
        self.launches = []

    def run(self, g0, g1, g2, stream, function, packed_metadata, metadata, enter_hook, exit_hook, *values):
        assert function is self.function and packed_metadata is self.packed_metadata
        assert (metadata, enter_hook, exit_hook) == (None, None, None)
        num_warps = self.specialization[1]
        assert triton_specialization(self.jit, values, num_warps) == self.specialization, "a wrong cache hit"
        self.launches.append(((g0, g1, g2), stream, values))


class StandInTriton:
    """Triton's launch path: compiles (a stand-in) per specialization and returns the compiled kernel."""

    def __init__(self, jit):
        self.jit, self.params, self.arg_names = jit, jit.params, jit.arg_names
        self.__name__ = jit.__name__
        self.compiled = {}
        self.calls = 0

    def __getitem__(self, grid):
        def launch(*args, num_warps=4, **constexprs):
            self.calls += 1
            values = [*args, *(constexprs[name] for name in self.arg_names[len(args) :])]
            spec = triton_specialization(self.jit, values, num_warps)
            return self.compiled.setdefault(spec, StandInCompiled(self.jit, spec))

        return launch


def driven(kernel: launch.DirectKernel) -> tuple[launch.DirectKernel, StandInTriton]:
    """``kernel`` launched directly through the stand-in (stream 7), and the stand-in."""
    triton_path = StandInTriton(jit_form(kernel))
    return launch.DirectKernel(triton_path, direct=True, stream=lambda device: 7), triton_path
