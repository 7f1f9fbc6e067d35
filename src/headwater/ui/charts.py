"""Small charts as SVG, rendered by the server: no script, no library, no build step.

:func:`bar_chart` draws one series of values (a mirror's sync durations, its lag after each
run) as bars over a linear scale from zero, with a y axis of "nice" ticks (1, 2 or 5 times a
power of ten), a few x labels, and an accessible name: ``role="img"`` with ``<title>`` and
``<desc>`` (the desc says the range and the last value in words, for screen readers; the page
shows the same numbers in a table too).

Every piece of text is escaped (:func:`markupsafe.escape`): labels can carry an upstream's or a
peer's text. Colours are not in the SVG: its shapes carry classes that the interface's
stylesheet colours for the light and dark schemes (inline styles would be refused by the
content security policy anyway). A missing value (None) leaves a gap, never a zero bar.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

__all__ = ["bar_chart", "nice_ticks"]

_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 8, 10, 28
_X_LABELS = 6


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Ticks from 0 to at least ``top``, about ``count`` of them, each step 1, 2 or 5 × 10^k."""
    # Below a millionth (or not a number) there is nothing to read: a scale to 1.
    if not math.isfinite(top) or top < 1e-6 or top > 1e300:
        return [0.0, 1.0] if not math.isfinite(top) or top < 1e-6 else [0.0, top]
    raw = top / max(1, count - 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    # Counted, not accumulated: a sum of steps can stall (rounding) and never reach ``top``.
    steps = max(1, math.ceil(top / step))  # at most count (step >= top / (count - 1))
    if steps * step < top:  # a quotient rounded down
        steps += 1
    return [i * step for i in range(steps + 1)]


def _tick_label(value: float, unit: str) -> str:
    if unit == "s":
        if value >= 3600:
            return f"{value / 3600:g} h"
        if value >= 60:
            return f"{value / 60:g} min"
        return f"{value:g} s"
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def bar_chart(
    values: Sequence[float | None],
    labels: Sequence[str],
    *,
    chart_id: str,
    title: str,
    description: str,
    unit: str = "",
    width: int = 640,
    height: int = 180,
) -> Markup:
    """An SVG bar chart of ``values`` (oldest first) with x ``labels`` (as many as values).

    ``chart_id`` makes the ids of its title and description unique on the page; ``unit`` "s"
    labels the axis in seconds, minutes and hours, anything else as plain numbers.
    """
    count = len(values)
    known = [v for v in values if v is not None and math.isfinite(v) and v >= 0]
    top = max(known, default=0.0)
    ticks = nice_ticks(top)
    scale_top = ticks[-1] or 1.0
    plot_w, plot_h = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM
    ident = escape(chart_id)
    summary = description
    if known:
        last = next((v for v in reversed(values) if v is not None), None)
        summary += (
            f" {count} runs; from {_tick_label(min(known), unit)} to "
            f"{_tick_label(top, unit)}; the last {_tick_label(last or 0.0, unit)}."
        )
    else:
        summary += " No values recorded yet."
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" aria-labelledby="{ident}-title {ident}-desc" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(summary)}</desc>',
    ]
    for tick in ticks:
        y = _TOP + plot_h - plot_h * (tick / scale_top)  # divided first: no overflow
        parts.append(
            f'<line class="grid" x1="{_LEFT}" x2="{width - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(_tick_label(tick, unit))}</text>"
        )
    if count:
        slot = plot_w / count
        bar = max(1.0, slot * 0.7)
        for i, value in enumerate(values):
            if value is None or not math.isfinite(value) or value < 0:
                continue
            h = plot_h * (min(value, scale_top) / scale_top)
            x = _LEFT + i * slot + (slot - bar) / 2
            label = labels[i] if i < len(labels) else ""
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{_TOP + plot_h - h:.1f}" width="{bar:.1f}" '
                f'height="{max(h, 0.5):.1f}"><title>{escape(label)}: '
                f"{escape(_tick_label(value, unit))}</title></rect>"
            )
        every = max(1, math.ceil(count / _X_LABELS))
        for i in range(0, count, every):
            x = _LEFT + i * slot + slot / 2
            label = labels[i] if i < len(labels) else ""
            parts.append(
                f'<text class="axis" x="{x:.1f}" y="{height - 8}" text-anchor="middle">'
                f"{escape(label[:16])}</text>"
            )
    parts.append(
        f'<line class="axis-line" x1="{_LEFT}" x2="{width - _RIGHT}" y1="{_TOP + plot_h}" '
        f'y2="{_TOP + plot_h}"/></svg>'
    )
    # Every text above went through escape(); numbers are formatted floats and ints.
    return Markup("".join(parts))  # noqa: S704
