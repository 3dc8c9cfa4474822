"""``check_int``: the one integer check of the data and model layers."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.checks import check_int
from benchmark.errors import ConfigError


@pytest.mark.parametrize("value", [3, np.int64(3), np.int32(3), np.uint8(3)])
def test_integers_pass_as_python_int(value):
    out = check_int("n", value, 1, 5)
    assert out == 3 and type(out) is int


@pytest.mark.parametrize("value", [True, 3.0, "3", None, 0, 6, np.int64(6)])
def test_non_integers_and_out_of_range_fail_naming_the_argument(value):
    with pytest.raises(ConfigError, match=r"^n must be an integer in \[1, 5\], got "):
        check_int("n", value, 1, 5)
