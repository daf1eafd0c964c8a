from __future__ import annotations

import pytest

from edgefmp.errors import ConfigError
from edgefmp.export.variants import Variant, expand, parse_batches, parse_precisions


def test_matrix_and_names() -> None:
    cells = expand(["s", "m"], ["fp32", "int8"], [None, 4], has_calibration=True)
    assert len(cells) == 8
    assert Variant("s", "int8-static", 4).name == "s-int8-static-b4"
    assert [v.name for v in expand([""], ["fp16", "int8"], [None], False)] == ["fp16", "int8-dynamic"]


def test_parse_errors() -> None:
    assert parse_batches("1, dynamic") == [1, None]
    assert parse_precisions("fp32,fp16") == ["fp32", "fp16"]
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        parse_precisions("fp32,fp8")
    with pytest.raises(ConfigError, match="--batch"):
        parse_batches("zero")
