"""The SVG chart renderer: well-formed, accessible, escaped, scaled, for any values."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from hypothesis import example, given, settings
from hypothesis import strategies as st

from headwater.ui.charts import bar_chart, nice_ticks

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)), max_size=60
    ),
    label=st.text(max_size=40).filter(lambda t: all(c >= " " or c in "\t\n" for c in t)),
    title=st.text(max_size=40).filter(lambda t: all(c >= " " or c in "\t\n" for c in t)),
)
@example(values=[1e-300], label="", title="")  # nice_ticks once looped forever on this
@example(values=[1.2659810808889549e306], label="", title="")  # and this bar was inf high
def test_any_values_and_text_make_a_well_formed_accessible_chart(
    values: list[float | None], label: str, title: str
) -> None:
    svg = parse(
        bar_chart(values, [label] * len(values), chart_id="c1", title=title, description="d")
    )
    assert svg.get("role") == "img"
    assert svg.get("aria-labelledby") == "c1-title c1-desc"
    assert svg.find(f"{SVG}title").text == (title or None)  # type: ignore[union-attr]
    assert svg.find(f"{SVG}desc") is not None
    drawable = [v for v in values if v is not None and math.isfinite(v) and v >= 0]
    bars = svg.findall(f"{SVG}rect")
    assert len(bars) == len(drawable)  # a gap for a missing or impossible value, never a bar
    for bar in bars:
        y, h = float(bar.get("y", "")), float(bar.get("height", ""))
        assert y >= 0 and y + h <= 180 + 0.01
    # No element but the chart's own: text never became markup.
    tags = {el.tag.removeprefix(SVG) for el in svg.iter()}
    assert tags <= {"svg", "title", "desc", "line", "text", "rect"}


def test_hostile_labels_stay_text() -> None:
    evil = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    markup = str(bar_chart([1.0, 2.0], [evil, evil], chart_id='"x', title=evil, description=evil))
    assert "<script" not in markup and "<img" not in markup and 'onerror="' not in markup
    assert "&lt;script&gt;" in markup
    assert parse(markup).get("aria-labelledby") == "&quot;x-title &quot;x-desc".replace(
        "&quot;", '"'
    )


@given(st.floats(min_value=1e-6, max_value=1e15))
def test_ticks_cover_the_top_with_nice_steps(top: float) -> None:
    ticks = nice_ticks(top)
    assert ticks[0] == 0 and ticks[-1] >= top
    step = ticks[1] - ticks[0]
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m, rel_tol=1e-6) for m in (1, 2, 5, 10))
    assert 2 <= len(ticks) <= 12


def test_seconds_axis_reads_as_time() -> None:
    svg = str(
        bar_chart([30.0, 4000.0], ["a", "b"], chart_id="t", title="t", description="", unit="s")
    )
    assert ">0 s<" in svg and " h<" in svg
    assert "the last 1.11111 h" in svg or "the last" in svg
