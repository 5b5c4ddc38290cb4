"""Run the README's usage examples (its ```python blocks, in order, in one namespace).

    python .ci/readme_examples.py README.md

CI runs it against the installed wheel, outside the repository; the tests run
it against the working tree (tests/test_readme_and_cli.py).  Exits non-zero,
with the block that failed, when one raises.
"""

from __future__ import annotations

import re
import sys
import traceback
from pathlib import Path


def blocks(text: str) -> list[str]:
    """The ```python blocks of a Markdown text, in order."""
    return re.findall(r"```python\n(.*?)\n```", text, flags=re.S)


def main(path: str) -> int:
    found = blocks(Path(path).read_text())
    if not found:
        print(f"{path}: no python examples found", file=sys.stderr)
        return 1
    namespace: dict[str, object] = {"__name__": "__readme__"}
    for i, code in enumerate(found, 1):
        try:
            exec(compile(code, f"{path}:example {i}", "exec"), namespace)
        except Exception:
            print(f"{path}: example {i} failed:\n{code}\n", file=sys.stderr)
            traceback.print_exc()
            return 1
    print(f"{path}: {len(found)} examples ran")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
