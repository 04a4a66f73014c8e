"""Small server-side SVG charts for the metrics dashboard: no JavaScript, no CDN."""

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 760, 220, 40, 36, 10


def stacked_bars(series: list[dict], parts: list[tuple[str, str, str]]) -> SafeString:
    """One bar per period, stacked by `parts` (key, label, colour), with a legend."""
    if not series:
        return mark_safe('<p class="hitl-muted">No reviews in this period.</p>')
    peak = max(sum(row.get(key) or 0 for key, _, _ in parts) for row in series) or 1
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    step = (WIDTH - PAD_LEFT) / len(series)
    bar_w = max(step * 0.7, 1)
    rects = []
    for index, row in enumerate(series):
        x = PAD_LEFT + index * step + (step - bar_w) / 2
        y = HEIGHT - PAD_BOTTOM
        for key, label, colour in parts:
            value = row.get(key) or 0
            h = plot_h * value / peak
            y -= h
            rects.append(
                (_n(x), _n(y), _n(bar_w), _n(h), colour, f"{row['period']}: {value} {label}")
            )
    bars = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>',
        rects,
    )
    return _frame(series, step, peak, bars, parts)


def line(series: list[dict], key: str, label: str, colour: str) -> SafeString:
    """A line of one figure over the periods (gaps where it is undefined)."""
    values = [row.get(key) for row in series]
    known = [v for v in values if v is not None]
    if not known:
        return mark_safe('<p class="hitl-muted">Nothing decided in this period.</p>')
    peak = max(known) or 1
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    step = (WIDTH - PAD_LEFT) / len(series)
    points = [
        (PAD_LEFT + i * step + step / 2, HEIGHT - PAD_BOTTOM - plot_h * v / peak, v, row["period"])
        for i, (v, row) in enumerate(zip(values, series, strict=True))
        if v is not None
    ]
    path = " ".join(f"{_n(x)},{_n(y)}" for x, y, _, _ in points)
    dots = format_html_join(
        "",
        '<circle cx="{}" cy="{}" r="3" fill="{}"><title>{}: {} {}</title></circle>',
        ((_n(x), _n(y), colour, period, value, label) for x, y, value, period in points),
    )
    body = format_html(
        '<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>{}', path, colour, dots
    )
    return _frame(series, step, peak, body, [(key, label, colour)])


def _n(value: float) -> str:
    # format_html escapes its arguments into text, so numbers are formatted beforehand.
    return f"{value:.1f}"


def _frame(series, step, peak, body, legend) -> SafeString:
    every = max(1, len(series) // 8)
    ticks = format_html_join(
        "",
        '<text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text>',
        (
            (_n(PAD_LEFT + i * step + step / 2), HEIGHT - PAD_BOTTOM + 14, row["period"][5:])
            for i, row in enumerate(series)
            if i % every == 0
        ),
    )
    keys = format_html_join(
        "",
        '<rect x="{}" y="{}" width="10" height="10" fill="{}"/>'
        '<text x="{}" y="{}" font-size="11">{}</text>',
        (
            (PAD_LEFT + i * 120, HEIGHT - 12, colour, PAD_LEFT + i * 120 + 14, HEIGHT - 3, label)
            for i, (_, label, colour) in enumerate(legend)
        ),
    )
    return format_html(
        '<svg class="hitl-chart" viewBox="0 0 {} {}" role="img" xmlns="http://www.w3.org/2000/svg">'
        '<text x="0" y="{}" font-size="10">{}</text>'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="currentColor" stroke-opacity=".3"/>'
        "{}{}{}</svg>",
        WIDTH,
        HEIGHT,
        PAD_TOP + 8,
        round(peak, 1),
        PAD_LEFT,
        HEIGHT - PAD_BOTTOM,
        WIDTH,
        HEIGHT - PAD_BOTTOM,
        body,
        ticks,
        keys,
    )
