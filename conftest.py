"""Collection rules for the whole repository (docstring examples included).

XLA:CPU in JAX 0.10 aborts the whole process, in its algebraic simplifier
("Window dimensions do not match RHS shape"), on some convolutions that
combine lhs dilation in one spatial dimension with a kernel larger than the
input in another (tests/test_jax_backend.py keeps reproducers and checks
that the flag below is what avoids them).  Random cases find such shapes,
so every test process runs XLA without that pass (the flag is appended to
any the caller set, before JAX reads them on its first computation).

Under pytest-xdist each worker process gets its share of the cores for its
thread pools (OpenMP and BLAS, which torch and NumPy use, XLA's Eigen pool,
the NumPy backend's own): two workers with a pool the size of the machine
each spin on cores the other needs, and a gradcheck that takes a second alone
took thirty.  Variables the caller set are kept.
"""

import os

_TEST_XLA_FLAGS = "--xla_disable_hlo_passes=algsimp"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_TEST_XLA_FLAGS}".strip()

_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    try:
        _CORES = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        _CORES = os.cpu_count() or 1
    _SHARE = str(max(1, _CORES // _WORKERS))
    for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "POLYCONV_NUMPY_THREADS"):
        os.environ.setdefault(_name, _SHARE)
    if _SHARE == "1" and "xla_cpu_multi_thread_eigen" not in os.environ["XLA_FLAGS"]:
        os.environ["XLA_FLAGS"] += " --xla_cpu_multi_thread_eigen=false"

# Running `python -m polyconv` is what __main__ is for; importing it would exit.
collect_ignore = ["polyconv/__main__.py", "build"]
