"""Timers: one call, best of, interleaved best; the settle sleep; the
error-per-second metric.

Part of the benchmark harness in ``benchmarks/laefast_bench/``, which the
asv suite and the benchmark scripts share.  It uses only laefast's public
names, and it is not part of the package: it stays the same whichever commit
asv measures (see ``benchmarks/laefast_bench/__init__.py``).
"""

import gc
import time

import numpy as np

__all__ = ["SETTLE_S", "error_per_second", "settle", "time_once", "best_of",
           "interleaved_best"]

SETTLE_S = 0.2            # > OpenBLAS's spin-wait (2^28 cycles) before its
                          # idle threads sleep

def error_per_second(start_error, end_error, seconds):
    """U error removed per second: (start_error - end_error) / seconds."""
    if seconds is None or not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds!r}")
    return (float(start_error) - float(end_error)) / float(seconds)


def settle(seconds=SETTLE_S):
    """Let the other BLAS pool's spinning threads go idle."""
    if seconds > 0:
        time.sleep(seconds)


def time_once(fn):
    """(wall time, result) of one call, with the garbage collector off."""
    gc_was = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        out = fn()
        return time.perf_counter() - t0, out
    finally:
        if gc_was:
            gc.enable()


def best_of(fn, repeats=3, budget=0.5, warmup=0, settle_s=0.0):
    """(best wall time, last result, calls made) over up to `repeats` calls.

    Stops repeating once `budget` seconds have been spent (at least one
    call), so that a long run is timed once and a short one several times.
    The garbage collector is off while a call is timed.  `warmup` untimed
    calls come first; `settle_s` seconds of sleep precede each timed call
    (see :func:`settle`).
    """
    best, out, calls, spent = np.inf, None, 0, 0.0
    for _ in range(max(0, int(warmup))):
        out = fn()
    for _ in range(max(1, int(repeats))):
        settle(settle_s)
        t, out = time_once(fn)
        best = min(best, t)
        calls += 1
        spent += t
        if spent >= budget:
            break
    return best, out, calls



def interleaved_best(fns, repeats, settle_s=SETTLE_S, warmup=True,
                     slow_s=None):
    """Best time and last result of each function, one call each per round.

    `fns` is a dict name -> zero-argument function; returns two dicts,
    name -> best seconds and name -> last result.  Interleaving matters on
    a shared machine whose speed drifts: a ratio of two timings taken far
    apart measures the drift.  Each call starts after `settle_s` seconds of
    sleep (see :func:`settle`); with `warmup`, each function is called once
    untimed first; a function slower than `slow_s` seconds is not called
    again.
    """
    if warmup:
        for fn in fns.values():
            fn()
    best = {name: np.inf for name in fns}
    result, skip = {}, set()
    for _ in range(max(1, int(repeats))):
        for name, fn in fns.items():
            if name in skip:
                continue
            settle(settle_s)
            t, result[name] = time_once(fn)
            best[name] = min(best[name], t)
            if slow_s is not None and t > slow_s:
                skip.add(name)
    return best, result
