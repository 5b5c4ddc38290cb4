"""Command line: ``python -m polyconv info | demo | bench | calibrate | conformance``.

``info`` prints the registered backends as a table (``--json`` for machine
output); ``demo`` runs a small worked convolution on the default backend
and checks it against the reference semantics; ``bench`` times polyconv
beside each framework's own convolution (:mod:`polyconv.bench`);
``conformance`` runs the conformance suite (:mod:`polyconv.conformance`) and
prints the backend-by-feature matrix.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def _info(args: argparse.Namespace) -> int:
    import polyconv

    info = polyconv.backend_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    rows = []
    for row in info:
        caps = row["capabilities"] or {}
        rows.append([
            row["name"],
            row["status"],
            row["version"] or "-",
            ",".join(caps.get("devices", [])) or "-",
            _dtype_summary(caps.get("dtypes", [])),
            row["distribution"] or "-",
            row["reason"] or row.get("details") or "",
        ])
    print(f"polyconv {polyconv.__version__}: {len(info)} backend registration(s)")
    print(_table(rows, ["backend", "status", "version", "devices", "dtypes", "from", "note"]))
    return 0


def _dtype_summary(dtypes: Sequence[str]) -> str:
    from .spec.dtypes import KNOWN_DTYPES

    order = {name: i for i, name in enumerate(KNOWN_DTYPES)}
    return " ".join(sorted(dtypes, key=lambda d: (order.get(d, len(order)), d))) or "-"


def _demo(args: argparse.Namespace) -> int:
    import numpy as np

    import polyconv
    from polyconv.conformance import reference

    x = np.arange(25, dtype=np.float32).reshape(1, 5, 5, 1)  # NHWC
    w = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32).reshape(3, 3, 1, 1)  # HWIO
    dn = ("NHWC", "HWIO", "NHWC")
    y = polyconv.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn, backend=args.backend)
    expected = reference.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn)
    print("input (5x5, NHWC):")
    print(x[0, :, :, 0])
    print("Sobel kernel (3x3, HWIO):")
    print(w[:, :, 0, 0])
    print(f"conv_general_dilated(x, w, (1, 1), 'SAME', dimension_numbers={dn})")
    print(f"on backend {args.backend or 'numpy (default)'}: {type(y).__module__}.{type(y).__name__} "
          f"{y.dtype} {tuple(y.shape)}")
    print(np.asarray(y)[0, :, :, 0])
    ok = np.allclose(np.asarray(y, dtype=np.float64), expected, rtol=1e-6, atol=1e-5)
    print("matches the reference semantics:", "yes" if ok else "NO")
    return 0 if ok else 1


def _bench(args: argparse.Namespace) -> int:
    from .bench import main_args  # imports frameworks: only when asked for

    return int(main_args(args.backend, args.json, args.budget, args.threads, args.only, args.plot, args.rounds))


def _calibrate(args: argparse.Namespace) -> int:
    from .bench.calibrate import main_args  # imports frameworks: only when asked for

    return int(main_args(args.backend, args.budget, args.threads))


def _conformance(args: argparse.Namespace) -> int:
    from .conformance.runner import main_args  # imports frameworks: only when asked for

    command = "python -m polyconv conformance" + "".join(
        f" --{k} {v}" for k, v in (("backend", args.backend), ("markdown", args.markdown)) if v)
    return int(main_args(args.backend, args.json, args.markdown, args.thorough, args.device, command,
                         args.features))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m polyconv``."""
    parser = argparse.ArgumentParser(prog="python -m polyconv", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="list the registered backends and their status")
    p_info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p_info.set_defaults(func=_info)
    p_demo = sub.add_parser("demo", help="run a small worked convolution and check it")
    p_demo.add_argument("--backend", default=None, help="backend name (default: by array type)")
    p_demo.set_defaults(func=_demo)
    p_bench = sub.add_parser("bench", help="time polyconv beside each framework's own convolution")
    p_bench.add_argument("--backend", default=None, help="one backend (default: every one available here)")
    p_bench.add_argument("--json", default=None, metavar="FILE", help="also write the report as JSON")
    p_bench.add_argument("--budget", type=float, default=2.0, help="seconds of timing per shape and pair")
    p_bench.add_argument("--threads", type=int, default=None, help="PyTorch's thread count (default: its own)")
    p_bench.add_argument("--only", default=None, help="only the shapes whose name contains this text")
    p_bench.add_argument("--rounds", type=int, default=1,
                         help="run every side's process this many times and keep each side's fastest round")
    p_bench.add_argument("--plot", default=None, metavar="FILE.png",
                         help="also draw the ratios per shape and backend (needs matplotlib)")
    p_bench.set_defaults(func=_bench)
    p_cal = sub.add_parser("calibrate", help="measure the FFT cost model's rates here and store them for this user")
    p_cal.add_argument("--backend", default=None, metavar="NAME[,NAME...]",
                       help="numpy, torch, cupy (default: each one usable here)")
    p_cal.add_argument("--budget", type=float, default=1.0, help="seconds of timing per measurement")
    p_cal.add_argument("--threads", type=int, default=None, help="BLAS/OpenMP threads (default: their own)")
    p_cal.set_defaults(func=_calibrate)
    p_conf = sub.add_parser("conformance", help="run the conformance suite and print the backend-by-feature matrix")
    p_conf.add_argument("--backend", default=None, metavar="NAME[,NAME...]",
                        help="backends to check (default: every registered one)")
    p_conf.add_argument("--json", default=None, metavar="FILE", help="also write the report as JSON")
    p_conf.add_argument("--markdown", default=None, metavar="FILE", help="also write the matrix as Markdown")
    p_conf.add_argument("--features", default=None, metavar="FEATURE[,FEATURE...]",
                        help="only these columns (conv_general_dilated, conv_transpose, patches, local, vjp, "
                        "autodiff, jit, errors, hypothesis)")
    p_conf.add_argument("--thorough", action="store_true", help="10x more random cases (long runs)")
    p_conf.add_argument("--device", default=None, help="device the operands are made on (default: the framework's)")
    p_conf.set_defaults(func=_conformance)
    args: Any = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
