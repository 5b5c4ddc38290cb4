"""Collection rules for the whole repository (docstring examples included).

XLA:CPU in JAX 0.10 aborts the whole process, in its algebraic simplifier
("Window dimensions do not match RHS shape"), on some convolutions that
combine lhs dilation in one spatial dimension with a kernel larger than the
input in another (tests/test_jax_backend.py keeps reproducers and checks
that the flag below is what avoids them).  Random cases find such shapes,
so every test process runs XLA without that pass (the flag is appended to
any the caller set, before JAX reads them on its first computation).
"""

import os

_TEST_XLA_FLAGS = "--xla_disable_hlo_passes=algsimp"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_TEST_XLA_FLAGS}".strip()

# Running `python -m polyconv` is what __main__ is for; importing it would exit.
collect_ignore = ["polyconv/__main__.py", "build"]
