"""The environment report (machine, BLAS libraries from threadpoolctl,
thread counts) that every table and figure carries.

Part of the benchmark harness in ``benchmarks/laefast_bench/``, which the
asv suite and the benchmark scripts share.  It uses only laefast's public
names, and it is not part of the package: it stays the same whichever commit
asv measures (see ``benchmarks/laefast_bench/__init__.py``).
"""

import os
import platform

import numpy as np
import scipy

__all__ = ["environment", "environment_line"]


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _owner(path):
    """The package that bundles a shared library (numpy, scipy, sklearn...)."""
    parts = (path or "").replace("\\", "/").split("/")
    for part in reversed(parts[:-1]):
        for name in ("numpy", "scipy", "scikit_learn", "sklearn", "laefast"):
            if part.startswith(name):
                return "sklearn" if name == "scikit_learn" else name
    return "system"


def _openmp_threads(pools, enabled):
    """laefast's OpenMP thread count, read from threadpoolctl's report of the
    OpenMP runtime laefast loaded (the harness uses public names only)."""
    if not enabled:
        return 1
    counts = [p["num_threads"] for p in pools if p["user_api"] == "openmp"
              and p["num_threads"]]
    laefast_own = [p["num_threads"] for p in pools
                   if p["user_api"] == "openmp" and p["owner"] == "laefast"]
    if laefast_own:
        return int(laefast_own[0])
    return int(max(counts)) if counts else 1


def environment():
    """Machine, versions, BLAS and thread counts, as a JSON-ready dict."""
    from threadpoolctl import threadpool_info

    import laefast
    pools = []
    for pool in threadpool_info():
        pools.append({
            "user_api": pool.get("user_api"),
            "internal_api": pool.get("internal_api"),
            "version": pool.get("version"),
            "num_threads": pool.get("num_threads"),
            "architecture": pool.get("architecture"),
            "threading_layer": pool.get("threading_layer"),
            "owner": _owner(pool.get("filepath")),
            "filepath": pool.get("filepath"),
        })
    try:
        import sklearn
        sk = sklearn.__version__
    except ImportError:
        sk = None
    openmp = bool(laefast.openmp_enabled())
    affinity = (len(os.sched_getaffinity(0))
                if hasattr(os, "sched_getaffinity") else os.cpu_count())
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": affinity,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sk,
        "laefast": laefast.__version__,
        "openmp_enabled": openmp,
        "openmp_threads": _openmp_threads(pools, openmp),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "threadpools": pools,
    }


def environment_line(env=None):
    """One line for a table header or a figure's footnote."""
    env = env or environment()
    blas = [f"{p['owner']} {p['internal_api']} {p['version']} "
            f"({p['architecture']}, {p['num_threads']} threads)"
            for p in env["threadpools"] if p["user_api"] == "blas"]
    omp = (f"OpenMP {env['openmp_threads']} threads" if env["openmp_enabled"]
           else "no OpenMP")
    return (f"{env['cpu']} ({env['usable_cpus']} CPUs), {env['platform']} | "
            f"BLAS: {'; '.join(blas) or 'unknown'} | laefast "
            f"{env['laefast']} {omp}, numpy {env['numpy']}, scipy "
            f"{env['scipy']}")

