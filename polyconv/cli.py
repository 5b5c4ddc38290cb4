"""Command line: python -m polyconv info | demo | bench | calibrate | conformance.

``info`` prints the registered backends (``--json`` for machine output);
``demo`` runs a small worked convolution and checks it against the
reference semantics; ``bench`` times polyconv beside each framework's own
convolution (:mod:`polyconv.bench`); ``calibrate`` measures the FFT cost
model's rates; ``conformance`` runs the conformance suite
(:mod:`polyconv.conformance`) and prints the backend-by-feature matrix.

Every command exits 0 on success, 1 when what it checked failed (a broken
default backend, a demo that departs from the reference, a conformance
failure), and 2 for a usage error; a polyconv error (a backend name that is
not registered, an invalid argument) is printed as one line, without a
traceback.  Tables fit 100 columns unless ``--wide`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from . import table

__all__ = ["main"]

#: The backend that runs NumPy arrays unless told otherwise; info and demo fail when it cannot run.
DEFAULT_BACKEND = "numpy"

_DTYPE_FAMILIES = (("int", "i"), ("uint", "u"), ("float", "f"), ("complex", "c"))
_DTYPE_LEGEND = "dtypes: b bool, i int, u unsigned int, f float, bf16 bfloat16, c complex; i8-64: sizes 8 to 64 bits"


def _info(args: argparse.Namespace) -> int:
    import polyconv

    info = polyconv.backend_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return _exit_status()
    width = None if args.wide else table.DEFAULT_WIDTH
    header = ["backend", "status", "version", "devices", "dtypes"]
    rows, notes = [], []
    for row in info:
        caps = row["capabilities"] or {}
        dtypes = caps.get("dtypes", [])
        cells = [row["name"], row["status"], row["version"] or "-", ",".join(caps.get("devices", [])) or "-",
                 _dtype_summary(dtypes) if args.wide else _dtype_compact(dtypes)]
        note = row["reason"] or row.get("details") or ""
        if args.wide:
            cells += [row["distribution"] or "-", note]
        else:
            if row["distribution"] and row["distribution"] != "polyconv":
                note = f"from {row['distribution']}" + (f"; {note}" if note else "")
            if note:
                notes.append((row["name"], note))
        rows.append(cells)
    print(f"polyconv {polyconv.__version__}: {len(info)} backend registration(s)")
    print(table.render(header + (["from", "note"] if args.wide else []), rows, width))
    if not args.wide:
        print(_DTYPE_LEGEND)
        if notes:
            print(table.notes(notes, width))
    return _exit_status()


def _default_problem() -> str | None:
    """Why the default backend cannot run here, or None (also when POLYCONV_BLOCK hides it on purpose)."""
    from .registry import blocked_names, registry

    if DEFAULT_BACKEND in blocked_names():
        return None
    record = registry.records().get(DEFAULT_BACKEND)
    if record is None:
        return f"the default backend {DEFAULT_BACKEND!r} is not registered (is polyconv installed?)"
    if registry.try_load(DEFAULT_BACKEND) is None:
        return f"the default backend {DEFAULT_BACKEND!r} is {record.status}: {record.reason}"
    return None


def _exit_status(ok: bool = True) -> int:
    """0, or 1 when ``ok`` is false or the default backend cannot run (then saying why on stderr)."""
    problem = _default_problem()
    if problem is not None:
        print(f"polyconv: error: {problem}", file=sys.stderr)
    return 0 if ok and problem is None else 1


def _dtype_summary(dtypes: Sequence[str]) -> str:
    from .spec.dtypes import KNOWN_DTYPES

    order = {name: i for i, name in enumerate(KNOWN_DTYPES)}
    return " ".join(sorted(dtypes, key=lambda d: (order.get(d, len(order)), d))) or "-"


def _dtype_compact(dtypes: Sequence[str]) -> str:
    """The dtypes in short: ``b i8-64 u8 f16-64 bf16 c64-128`` (a range: every size between).

    Examples
    --------
    >>> _dtype_compact(['bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'float32', 'float64', 'bfloat16'])
    'b i8-64 u8 f32-64 bf16'
    """
    have = set(dtypes)
    parts = ["b"] if "bool" in have else []
    for family, short in _DTYPE_FAMILIES:
        sizes = [b for b in (8, 16, 32, 64, 128) if f"{family}{b}" in have]
        run: list[int] = []
        for b in sizes + [0]:  # 0 ends the last run
            if run and b == run[-1] * 2:
                run.append(b)
                continue
            if run:
                parts.append(f"{short}{run[0]}" + (f"-{run[-1]}" if len(run) > 1 else ""))
            run = [b]
        if family == "float" and "bfloat16" in have:
            parts.append("bf16")
    known = {f"{family}{b}" for family, _ in _DTYPE_FAMILIES for b in (8, 16, 32, 64, 128)} | {"bool", "bfloat16"}
    parts += sorted(have - known)
    return " ".join(parts) or "-"


def _demo(args: argparse.Namespace) -> int:
    import numpy as np

    import polyconv
    from polyconv.conformance import reference
    from polyconv.dispatch import resolve

    x = np.arange(25, dtype=np.float32).reshape(1, 5, 5, 1)  # NHWC
    w = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32).reshape(3, 3, 1, 1)  # HWIO
    dn = ("NHWC", "HWIO", "NHWC")
    op = "conv_general_dilated"
    ran = resolve((x, w), args.backend, op)  # the backend the call below runs on, by the same rules
    y = polyconv.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn, backend=args.backend)
    expected = reference.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn)
    print("input (5x5, NHWC):")
    print(x[0, :, :, 0])
    print("Sobel kernel (3x3, HWIO):")
    print(w[:, :, 0, 0])
    print(f"{op}(x, w, (1, 1), 'SAME', dimension_numbers={dn})")
    how = "named with --backend" if args.backend else "chosen for NumPy arrays"
    print(f"on backend {ran.name} ({how}): {type(y).__module__}.{type(y).__name__} {y.dtype} {tuple(y.shape)}")
    print(np.asarray(y)[0, :, :, 0])
    ok = np.allclose(np.asarray(y, dtype=np.float64), expected, rtol=1e-6, atol=1e-5)
    print("matches the reference semantics:", "yes" if ok else "NO")
    return _exit_status(ok) if args.backend is None else (0 if ok else 1)


def _check_backend_names(value: str | None) -> None:
    """Raise polyconv's BackendNotFoundError (naming the closest one) for a name that is not registered."""
    from .registry import registry

    for name in (n.strip() for n in (value or "").split(",")):
        if name:
            registry.record(name)


def _bench(args: argparse.Namespace) -> int:
    _check_backend_names(args.backend)
    from .bench import main_args  # imports frameworks: only when asked for

    return int(main_args(args.backend, args.json, args.budget, args.threads, args.only, args.plot, args.rounds))


def _calibrate(args: argparse.Namespace) -> int:
    _check_backend_names(args.backend)
    from .bench.calibrate import main_args  # imports frameworks: only when asked for

    return int(main_args(args.backend, args.budget, args.threads))


def _conformance(args: argparse.Namespace) -> int:
    _check_backend_names(args.backend)
    from .conformance.runner import main_args  # imports frameworks: only when asked for

    command = "python -m polyconv conformance" + "".join(
        f" --{k} {v}" for k, v in (("backend", args.backend), ("markdown", args.markdown)) if v)
    return int(main_args(args.backend, args.json, args.markdown, args.thorough, args.device, command,
                         args.features, wide=args.wide))


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default where it has one (not for flags and unset options)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".",
                              formatter_class=_HelpFormatter)

    parser = argparse.ArgumentParser(
        prog="python -m polyconv", formatter_class=_HelpFormatter,
        description="polyconv: one convolution API (jax.lax semantics) for every array framework.",
        epilog="Exit status: 0 success, 1 a check failed (broken default backend, conformance failure), "
        "2 a usage or polyconv error (printed as one line).",
    )
    parser.add_argument("--version", action="version", version=f"polyconv {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p_info = command("info", "list the registered backends and their status")
    p_info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p_info.add_argument("--wide", action="store_true", help="print the whole table, whatever its width")
    p_info.set_defaults(func=_info)
    p_demo = command("demo", "run a small worked convolution and check it against the reference")
    p_demo.add_argument("--backend", default=None, help="backend name (default: the one that owns NumPy arrays)")
    p_demo.set_defaults(func=_demo)
    p_bench = command("bench", "time polyconv beside each framework's own convolution")
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
    p_cal = command("calibrate", "measure the FFT cost model's rates here and store them for this user")
    p_cal.add_argument("--backend", default=None, metavar="NAME[,NAME...]",
                       help="numpy, torch, cupy (default: each one usable here)")
    p_cal.add_argument("--budget", type=float, default=1.0, help="seconds of timing per measurement")
    p_cal.add_argument("--threads", type=int, default=None, help="BLAS/OpenMP threads (default: their own)")
    p_cal.set_defaults(func=_calibrate)
    p_conf = command("conformance", "run the conformance suite and print the backend-by-feature matrix")
    p_conf.add_argument("--backend", default=None, metavar="NAME[,NAME...]",
                        help="backends to check (default: every registered one)")
    p_conf.add_argument("--json", default=None, metavar="FILE", help="also write the report as JSON")
    p_conf.add_argument("--markdown", default=None, metavar="FILE", help="also write the matrix as Markdown")
    p_conf.add_argument("--features", default=None, metavar="FEATURE[,FEATURE...]",
                        help="only these columns (conv_general_dilated, conv_transpose, patches, local, vjp, "
                        "autodiff, jit, errors, hypothesis)")
    p_conf.add_argument("--thorough", action="store_true", help="10x more random cases (long runs)")
    p_conf.add_argument("--device", default=None, help="device the operands are made on (default: the framework's)")
    p_conf.add_argument("--wide", action="store_true", help="print the whole matrix, whatever its width")
    p_conf.set_defaults(func=_conformance)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m polyconv``: the exit status of the command.

    Examples
    --------
    A polyconv error is one line on stderr (here: ``python -m polyconv
    conformance: error: backend: no backend named 'nunpy' is registered; did
    you mean 'numpy'? ...``) and exit status 2:

    >>> main(["conformance", "--backend", "nunpy"])
    2
    """
    from .errors import PolyconvError

    args: Any = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except PolyconvError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the error's own layout
        print(f"python -m polyconv {args.command}: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as other commands do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
