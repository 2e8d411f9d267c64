"""What a refused cron expression says: separators other than space and tab are named,
and a day that no month in the expression has reads as such, not as "allowed: 1-31"."""

from __future__ import annotations

import pytest

from cronhive.errors import InvalidSchedule
from cronhive.schedule import parse_schedule


@pytest.mark.parametrize(
    ("expression", "said"),
    [
        ("0\u00a00 * * *", "U+00A0 NO-BREAK SPACE; fields are separated by spaces and tabs only"),
        ("0 0\u2003* * *", "U+2003 EM SPACE"),
        ("0 0 * *\u200b*", "U+200B ZERO WIDTH SPACE"),
        ("0 0\n* * *", "U+000A"),
        ("0 0 30 2 *", "never fires: day '30' never falls in month '2': February has at most 29"),
        ("0 0 31 4,6,9,11 *", "never fires: day '31' never falls in month '4,6,9,11'"),
        ("0 0 32 * *", "bad day-of-month field '32'"),
    ],
)
def test_refused_with_a_clear_reason(expression: str, said: str) -> None:
    with pytest.raises(InvalidSchedule) as caught:
        parse_schedule("cron", expression)
    assert said in str(caught.value)
    assert "allowed: 1-31" not in str(caught.value) or "32" in expression


@pytest.mark.parametrize(
    "expression", ["0\t3 * * *", "  0 3  * *\t* ", "0 0 29 2 *", "0 0 30 1-3 *"]
)
def test_spaces_and_tabs_separate_fields(expression: str) -> None:
    parse_schedule("cron", expression)  # no error
