from dataclasses import dataclass

import pytest

from common.checks import check, check_fields


def test_check_names_the_value_and_what_is_valid():
    check(True, "x", 1, "anything")
    with pytest.raises(ValueError, match=r"^lr=-1.0 is invalid; expected > 0$"):
        check(False, "lr", -1.0, "> 0")


def test_check_fields_reads_each_value_from_the_object():
    @dataclass
    class C:
        a: int = 1
        b: str = "x"

    c = C()
    check_fields(c, [(c.a >= 1, "a", ">= 1"), (c.b in ("x", "y"), "b", "x or y")])
    with pytest.raises(ValueError, match=r"^b='z' is invalid; expected x or y$"):
        check_fields(C(b="z"), [(False, "b", "x or y")])
