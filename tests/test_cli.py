"""The command line tells the truth: which backend ran, exit statuses, one-line
errors, tables that fit 100 columns, help without markup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest
from polyconv.conformance import report

import polyconv
from polyconv import table
from polyconv.cli import _dtype_compact, main

pytestmark = pytest.mark.usefixtures("clean_polyconv_env")

# Makes the NumPy backend fail to load, as a wheel without polyconv.backends.fft did.
_BREAK_NUMPY = "import sys; sys.modules['polyconv.backends.fft'] = None; "


def _cli(*args: str, prelude: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("POLYCONV_BLOCK", "POLYCONV_BACKEND")}
    code = prelude + "from polyconv.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", "import sys; " + code, *args], capture_output=True, text=True,
                          timeout=180, env={**base, **(env or {})})


def test_version() -> None:
    proc = _cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"polyconv {polyconv.__version__}"


def test_demo_names_the_backend_that_ran(capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["demo"]) == 0
    assert "on backend numpy (chosen for NumPy arrays): numpy.ndarray" in capsys.readouterr().out
    monkeypatch.setenv("POLYCONV_BLOCK", "numpy")  # hidden on purpose: not an error
    assert main(["demo"]) == 0
    assert "on backend array_api (chosen for NumPy arrays)" in capsys.readouterr().out


def test_demo_and_info_fail_when_the_default_backend_is_broken() -> None:
    demo = _cli("demo", prelude=_BREAK_NUMPY)
    assert demo.returncode == 1, demo.stderr
    assert "on backend array_api (chosen for NumPy arrays)" in demo.stdout
    assert "polyconv: error: the default backend 'numpy' is broken: " in demo.stderr
    for args in (("info",), ("info", "--json")):
        info = _cli(*args, prelude=_BREAK_NUMPY)
        assert info.returncode == 1, info.stderr
        assert "polyconv: error: the default backend 'numpy' is broken: " in info.stderr
    rows = json.loads(_cli("info", "--json", prelude=_BREAK_NUMPY).stdout)
    assert next(r for r in rows if r["name"] == "numpy")["status"] == "broken"


@pytest.mark.parametrize("args", [
    ("demo", "--backend", "nunpy"),
    ("conformance", "--backend", "nunpy"),
    ("conformance", "--backend", "numpy,nunpy"),
    ("bench", "--backend", "nunpy"),
    ("calibrate", "--backend", "nunpy"),
])
def test_a_polyconv_error_is_one_line_and_exit_2(args: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(list(args)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"python -m polyconv {args[0]}: error: backend: no backend named 'nunpy' is "
                               "registered; did you mean 'numpy'? (registered: ")


def test_no_traceback_from_the_module_entry_point() -> None:
    proc = subprocess.run([sys.executable, "-m", "polyconv", "conformance", "--backend", "nope"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "python -m polyconv conformance: error: backend: no backend named 'nope' is registered (registered: "
        + ", ".join(polyconv.list_backends()) + ")"
    )


def test_info_fits_100_columns_and_wide_shows_everything(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    narrow = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in narrow) <= table.DEFAULT_WIDTH
    assert narrow[1].split() == ["backend", "status", "version", "devices", "dtypes"]
    numpy_row = next(line.split() for line in narrow if line.startswith("numpy "))
    assert numpy_row[:4] == ["numpy", "ok", __import__("numpy").__version__, "cpu"]
    assert "f16-64" in numpy_row and "bf16" in numpy_row
    assert any(line.startswith("dtypes: b bool") for line in narrow)
    assert main(["info", "--wide"]) == 0
    wide = capsys.readouterr().out.splitlines()
    assert wide[1].split() == ["backend", "status", "version", "devices", "dtypes", "from", "note"]
    assert max(len(line) for line in wide) > table.DEFAULT_WIDTH  # every dtype spelled out, the notes inline
    assert "float16 bfloat16 float32 float64" in next(line for line in wide if line.startswith("numpy "))


def test_compact_dtypes() -> None:
    every = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16",
             "bfloat16", "float32", "float64", "complex64", "complex128"]
    assert _dtype_compact(every) == "b i8-64 u8-64 f16-64 bf16 c64-128"
    assert _dtype_compact(["int8", "int32", "float64", "float8_e4m3"]) == "i8 i32 f64 float8_e4m3"
    assert _dtype_compact([]) == "-"


# The matrix of a full run (docs/conformance.md), with failures added.
_MATRIX = {
    "array_api": "1472/41 816/49 884/12 886/8 1051/47 - - 35 5",
    "dask": "1513 865 896 894 1098 - - 35 5",
    "jax": "808 328 387 396 438 401 135 35 6",
    "numpy": "1513 865 896 894 1098 - - 35 5",
    "torch": "1382/131 761/104/12 880/16 882/12 969/129 1028 129/6 35 6",
    "toy": "438/1075 0/865 0/896 0/894 0/1098 - - 35 5",
}


def _wide_tally() -> report.Tally:
    t = report.Tally()
    features = ("conv_general_dilated", "conv_transpose", "patches", "local", "vjp", "autodiff", "jit", "errors",
                "hypothesis")
    for backend, cells in _MATRIX.items():
        for feature, cell in zip(features, cells.split()):
            if cell != "-":
                counts = [int(n) for n in cell.split("/")] + [0, 0]
                t.counts[(backend, feature)] = Counter(
                    {k: n for k, n in zip(("pass", "unsupported", "fail"), counts) if n})
    t.notes["cupy"] = "unavailable: CuPy is not installed (pip install 'polyconv[cupy]')"
    return t


def test_conformance_matrix_fits_100_columns() -> None:
    t = _wide_tally()
    whole = report.terminal(t)
    assert max(len(line) for line in whole.splitlines()) > table.DEFAULT_WIDTH
    assert "1382 pass, 131 unsupported" in whole
    short = report.terminal(t, table.DEFAULT_WIDTH)
    lines = short.splitlines()
    assert max(len(line) for line in lines) <= table.DEFAULT_WIDTH
    assert lines[0].split()[:3] == ["backend", "conv", "transpose"]
    torch_row = next(line for line in lines if line.startswith("torch "))
    assert "761 u104 F12" in torch_row and "1382 u131" in torch_row and "..." not in short
    assert next(line for line in lines if line.startswith("cupy ")).split() == ["cupy", "n/a"]
    assert "cupy: unavailable: CuPy is not installed (pip install 'polyconv[cupy]')" in short
    assert any(line.startswith("N passed, uN unsupported") for line in lines)
    small = report.Tally()
    small.add("numpy", "conv_general_dilated", "pass")
    assert report.terminal(small, table.DEFAULT_WIDTH) == report.terminal(small)  # fits: left whole


def test_render_cuts_the_widest_column_last_resort() -> None:
    text = table.render(["a", "b"], [["x" * 10, "y" * 200]], width=40)
    assert [len(line) for line in text.splitlines()][1:] == [40, 40]
    assert text.splitlines()[2].endswith("y...")


@pytest.mark.parametrize("command", [None, "info", "demo", "bench", "calibrate", "conformance"])
def test_help_shows_defaults_and_no_markup(command: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(([command] if command else []) + ["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "``" not in text and ":mod:" not in text and ":func:" not in text
    if command == "bench":
        assert "(default: 2.0)" in text and "(default: 1)" in text
    if command is None:
        assert "--version" in text and "Exit status" in text


def test_the_module_docstring_has_no_markup_in_the_top_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "polyconv", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "``" not in proc.stdout


# -- messages that say what to do -------------------------------------------------


def _error(*args: Any, **kwargs: Any) -> str:
    with pytest.raises(polyconv.PolyconvError) as exc_info:
        polyconv.conv_general_dilated(*args, **kwargs)
    return str(exc_info.value)


def test_default_layout_mismatch_names_the_layout_and_the_channels_last_tuple() -> None:
    import numpy as np
    x, w = np.ones((8, 32, 32, 3), np.float32), np.ones((3, 3, 3, 16), np.float32)
    message = _error(x, w, (1, 1), "SAME")
    assert message.endswith(
        "dimension_numbers=None means channels first: lhs 'NCHW', rhs 'OIHW', out 'NCHW'; "
        "for channels-last operands pass dimension_numbers=('NHWC', 'HWIO', 'NHWC')"
    )
    x1, w1 = np.ones((2, 9, 4)), np.ones((3, 4, 5))
    assert "for channels-last operands pass dimension_numbers=('NHC', 'HIO', 'NHC')" in _error(x1, w1, (1,), "SAME")
    # with explicit dimension numbers there is nothing to say about the default
    bad = _error(x, w, (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW"))
    assert "input feature size must equal" in bad
    assert "dimension_numbers=None" not in bad


def test_dtype_mismatch_suggests_the_cast_and_names_a_python_list() -> None:
    import numpy as np
    x = np.ones((1, 1, 5), np.float32)
    message = _error(x, np.ones((1, 1, 2)), (1,), "VALID")
    assert message == ("conv_general_dilated: rhs must have the same dtype as lhs (float32); got float64. "
                       "Cast one of them first: rhs to float32, or lhs to float64")
    assert isinstance(_exc(x, np.ones((1, 1, 2))), polyconv.errors.DtypeMismatchError)
    listed = _error(x, [[[1.0, 2.0]]], (1,), "VALID")
    assert listed.endswith("(rhs was a Python list, which the numpy backend made a float64 array: "
                           "pass it as an array of the dtype you mean)")
    with pytest.raises(TypeError, match=r"cotangent was a Python list, which the numpy backend made a float64"):
        polyconv.conv_general_dilated_vjp(x, np.ones((1, 1, 2), np.float32), [[[1.0] * 4]], (1,), "VALID")


def _exc(*operands: Any) -> BaseException:
    with pytest.raises(polyconv.PolyconvError) as exc_info:
        polyconv.conv_general_dilated(*operands, (1,), "VALID")
    return exc_info.value


def test_int_padding_shows_the_pairs_form() -> None:
    import numpy as np
    message = _error(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), (1, 1), 1)
    assert message.endswith("; got 1. To pad 1 on both sides of every spatial axis, write ((1, 1), (1, 1))")
    assert "To pad" not in _error(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)), (1, 1), 1.5)


def test_unknown_backend_suggests_the_closest_name() -> None:
    import numpy as np
    message = _error(np.ones((1, 1, 3)), np.ones((1, 1, 2)), (1,), "VALID", backend="pytorch")
    assert "no backend named 'pytorch' is registered; did you mean 'torch'?" in message
    far = _error(np.ones((1, 1, 3)), np.ones((1, 1, 2)), (1,), "VALID", backend="zzzzzz")
    assert "did you mean" not in far
