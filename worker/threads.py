"""The BLAS and OpenMP thread variables, pinned to one thread per process.

Libraries read them once, when numpy or scikit-learn loads them, so they are
set before that: in `mlworker run` before the supervisor imports numpy, and
in the environment the job forkserver starts with (`worker.execute`). This
module imports nothing heavy, so setting them never loads numpy itself.
"""

from __future__ import annotations

from collections.abc import MutableMapping

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def pin_threads(environ: MutableMapping[str, str]) -> None:
    """One thread per library, unless the operator chose otherwise."""
    for name in THREAD_VARIABLES:
        environ.setdefault(name, "1")
