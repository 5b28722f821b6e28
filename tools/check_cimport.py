"""Check that a third-party package can ``cimport laefast._blas``.

Builds a tiny extension module, as another package would, against the
laefast that the running Python imports (its installed ``.pxd`` files:
the package folder of a regular install, or for an editable install the
files meson installs, read through ``importlib.resources``), then imports
it and checks two 2 x 2 products against NumPy.  Needs Cython and a C
compiler (``cc``, or ``$CC``); no build system.

Run:  python tools/check_cimport.py        (exit status 0: it works)

``tools/check_wheel.sh`` runs it with the repaired wheel installed in a
fresh virtual environment; ``tests/test_layout.py`` runs it in the
development environment.
"""

import importlib.resources
import importlib.util
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile

# What another package would write: a cdef function of laefast's BLAS layer
# called from its own extension, with laefast's named transpose flags.
THIRD_PARTY_PYX = """\
from laefast._blas cimport NO_TRANS, TRANS, gemm


def product(double[:, ::1] A, double[:, ::1] B, double[:, ::1] out,
            bint transpose_b=False):
    # Row-major out (2 x 2) = A op(B), through laefast's wrapper of dgemm.
    gemm(NO_TRANS, TRANS if transpose_b else NO_TRANS, 2, 2, 2, 1.0,
         &A[0, 0], 2, &B[0, 0], 2, 0.0, &out[0, 0], 2)
"""


def compiler():
    """The C compiler command (a list), or None when there is none."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    cmd = shlex.split(cc)
    if cmd and shutil.which(cmd[0]):
        return cmd
    return [shutil.which("cc")] if shutil.which("cc") else None


def installed_include_dir(workdir):
    """A folder to pass to Cython's -I that holds laefast's installed .pxd
    files as ``laefast/*.pxd`` (beside an ``__init__.py``)."""
    import laefast
    package = pathlib.Path(laefast.__file__).resolve().parent
    if (package / "_blas.pxd").is_file():
        return package.parent                   # a regular install
    # An editable install: its package folder is the source tree's laefast/
    # (no .pxd there); the files it installs are mapped by its loader.
    stage = pathlib.Path(workdir) / "include" / "laefast"
    stage.mkdir(parents=True)
    (stage / "__init__.py").write_text("")
    found = []
    for entry in importlib.resources.files("laefast").iterdir():
        if entry.name.endswith(".pxd"):
            (stage / entry.name).write_bytes(entry.read_bytes())
            found.append(entry.name)
    if "_blas.pxd" not in found:
        raise RuntimeError(f"the installed laefast ({package}) has no "
                           f"_blas.pxd; its .pxd files: {found}")
    return stage.parent


def build(workdir):
    """Build the third-party module in workdir; returns its path."""
    workdir = pathlib.Path(workdir)
    include = installed_include_dir(workdir)
    pyx = workdir / "third_party.pyx"
    pyx.write_text(THIRD_PARTY_PYX)
    c_file = workdir / "third_party.c"
    subprocess.run([sys.executable, "-m", "cython", "-3", "-I", str(include),
                    str(pyx), "-o", str(c_file)], check=True,
                   capture_output=True, text=True)
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (set CC)")
    module = workdir / ("third_party" + sysconfig.get_config_var("EXT_SUFFIX"))
    # -O0: the check is that it compiles and links, not how fast it runs.
    subprocess.run(cc + ["-shared", "-fPIC", "-O0", "-w",
                         "-I", sysconfig.get_paths()["include"],
                         str(c_file), "-o", str(module)],
                   check=True, capture_output=True, text=True)
    return module


def check(workdir):
    """Build, import and run the module; returns the two products."""
    import numpy as np
    path = build(workdir)
    spec = importlib.util.spec_from_file_location("third_party", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    A = np.array([[1.0, 2.0], [3.0, 4.0]])
    B = np.array([[5.0, 6.0], [7.0, 8.0]])
    AB, ABt = np.empty((2, 2)), np.empty((2, 2))
    module.product(A, B, AB)
    module.product(A, B, ABt, True)
    if not (np.array_equal(AB, A @ B) and np.array_equal(ABt, A @ B.T)):
        raise AssertionError(f"wrong products: {AB.tolist()} (A B = "
                             f"{(A @ B).tolist()}), {ABt.tolist()} (A B^T = "
                             f"{(A @ B.T).tolist()})")
    return AB, ABt


def main():
    import laefast
    with tempfile.TemporaryDirectory() as tmp:
        try:
            AB, ABt = check(tmp)
        except subprocess.CalledProcessError as exc:
            print(exc.stdout, exc.stderr, sep="\n", file=sys.stderr)
            raise
    print(f"cimport laefast._blas from laefast {laefast.__version__} "
          f"({pathlib.Path(laefast.__file__).parent}): A B = {AB.tolist()}, "
          f"A B^T = {ABt.tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
