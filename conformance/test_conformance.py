"""The conformance suite as pytest collects it: one test per unit of items of
:mod:`polyconv.conformance.suite` (see :mod:`polyconv.conformance.plugin`), on
every backend asked for.

Run it with ``pytest --pyargs polyconv.conformance --polyconv-backend=NAME``
(the options come from :mod:`polyconv.conformance.plugin`, which pytest
loads through polyconv's ``pytest11`` entry point).
"""

from __future__ import annotations

from typing import Any

import pytest
from polyconv.conformance.plugin import run_item


def test_conformance(request: pytest.FixtureRequest, polyconv_item: Any) -> None:
    run_item(request.config, polyconv_item, request.node)
