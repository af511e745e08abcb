"""Small server-rendered SVG charts for the dashboard: a peer's latency sparkline and the signing activity.

Pure functions from numbers to markup: every value written into the SVG is a number formatted here or text
escaped here, so the result is safe to mark as Markup. Colours come from CSS classes (static/css/igloo.css),
never from inline styles.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

from markupsafe import Markup, escape

from store.activity import ECDH, FAILED, OK, REFUSED, REQUESTER, RESPONDER, SIGN, ActivitySeries

SPARK_WIDTH, SPARK_HEIGHT, SPARK_SLOTS = 120, 28, 30
CHART_WIDTH, CHART_HEIGHT = 480, 120
_MARK = 8  # px strip at the top and bottom edges for failure / refusal marks


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def sparkline_svg(samples: Sequence[tuple[float, float | None]], slots: int = SPARK_SLOTS) -> Markup:
    """A latency sparkline: the newest ping at the right edge, lost pings as red ticks at the bottom."""
    recent = list(samples)[-slots:]
    values = [ms for _, ms in recent if ms is not None]
    lost = sum(1 for _, ms in recent if ms is None)
    if values:
        label = (f"Latency of the last {len(recent)} pings: {_num(min(values))} to {_num(max(values))} ms, "
                 f"last {_num(values[-1])} ms" if recent[-1][1] is not None else
                 f"Latency of the last {len(recent)} pings: {_num(min(values))} to {_num(max(values))} ms, "
                 "last ping lost")
    elif recent:
        label = f"No answer to the last {len(recent)} pings"
    else:
        label = "No pings yet"
    if lost and values:
        label += f" ({lost} lost)"
    top = max(values) if values else 1.0
    top = max(top, 1.0)
    step = SPARK_WIDTH / max(slots - 1, 1)
    offset = slots - len(recent)
    inner = SPARK_HEIGHT - 6

    def x(i: int) -> float:
        return (offset + i) * step

    def y(ms: float) -> float:
        return 3 + inner - (ms / top) * inner

    parts = [f'<line class="spark-base" x1="0" y1="{SPARK_HEIGHT - 1}" x2="{SPARK_WIDTH}" '
             f'y2="{SPARK_HEIGHT - 1}"/>']
    run: list[str] = []
    runs: list[list[str]] = []
    for i, (_, ms) in enumerate(recent):
        if ms is None:
            if run:
                runs.append(run)
                run = []
            parts.append(f'<line class="spark-lost" x1="{_num(x(i))}" y1="{SPARK_HEIGHT - 7}" '
                         f'x2="{_num(x(i))}" y2="{SPARK_HEIGHT}"/>')
        else:
            run.append(f"{_num(x(i))},{_num(y(ms))}")
    if run:
        runs.append(run)
    for points in runs:
        if len(points) == 1:
            cx, cy = points[0].split(",")
            parts.append(f'<circle class="spark-dot" cx="{cx}" cy="{cy}" r="1.5"/>')
        else:
            parts.append(f'<polyline class="spark-line" points="{" ".join(points)}"/>')
    if recent and recent[-1][1] is not None:
        parts.append(f'<circle class="spark-last" cx="{_num(x(len(recent) - 1))}" '
                     f'cy="{_num(y(recent[-1][1]))}" r="2.5"/>')
    text = escape(label)
    return Markup(  # noqa: S704 - numbers formatted above and escaped text only
        f'<svg class="spark" viewBox="0 0 {SPARK_WIDTH} {SPARK_HEIGHT}" width="{SPARK_WIDTH}" '
        f'height="{SPARK_HEIGHT}" role="img" aria-label="{text}" data-samples="{len(recent)}">'
        f"<title>{text}</title>{''.join(parts)}</svg>"
    )


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M")


def _bucket_title(start: int, seconds: int, counts: dict[str, int]) -> str:
    lines = [f"{_clock(start)} to {_clock(start + seconds)} UTC"]
    asked = [f"{counts['rs']} signature{'s' * (counts['rs'] != 1)}" if counts["rs"] else "",
             f"{counts['re']} ECDH" if counts["re"] else ""]
    answered = [f"{counts['ps']} signature{'s' * (counts['ps'] != 1)}" if counts["ps"] else "",
                f"{counts['pe']} ECDH" if counts["pe"] else ""]
    if any(asked):
        lines.append("asked by this signer: " + ", ".join(a for a in asked if a))
    if counts["failed"]:
        lines.append(f"failed: {counts['failed']}")
    if any(answered):
        lines.append("answered for peers: " + ", ".join(a for a in answered if a))
    if counts["refused"]:
        lines.append(f"refused: {counts['refused']}")
    if len(lines) == 1:
        lines.append("no activity")
    return "\n".join(lines)


def activity_svg(series: ActivitySeries) -> Markup:
    """The signing activity chart: one column per bucket, this signer's own requests as bars above the middle
    line, its answers to peers below (signatures and ECDH stacked), failed requests and refusals as red marks
    on the top and bottom edges. Each column carries a ``<title>`` with its numbers."""
    columns = []
    for bucket in series.buckets:
        columns.append({
            "rs": bucket.count(SIGN, REQUESTER, OK), "re": bucket.count(ECDH, REQUESTER, OK),
            "ps": bucket.count(SIGN, RESPONDER, OK), "pe": bucket.count(ECDH, RESPONDER, OK),
            "failed": bucket.count(None, REQUESTER, FAILED),
            "refused": bucket.count(None, RESPONDER, REFUSED),
        })
    top = max([1] + [max(c["rs"] + c["re"], c["ps"] + c["pe"]) for c in columns])
    middle = CHART_HEIGHT / 2
    half = middle - _MARK - 2
    slot = CHART_WIDTH / max(len(columns), 1)
    bar = max(slot - 2, 1.0)
    parts = [f'<line class="act-axis" x1="0" y1="{_num(middle)}" x2="{CHART_WIDTH}" y2="{_num(middle)}"/>']
    for i, (bucket, c) in enumerate(zip(series.buckets, columns, strict=True)):
        x = i * slot + (slot - bar) / 2
        shapes = []
        up = middle
        for key, css in (("rs", "act-sign"), ("re", "act-ecdh")):
            if c[key]:
                h = c[key] / top * half
                up -= h
                shapes.append(f'<rect class="{css}" x="{_num(x)}" y="{_num(up)}" width="{_num(bar)}" '
                              f'height="{_num(h)}"/>')
        down = middle
        for key, css in (("ps", "act-sign act-answer"), ("pe", "act-ecdh act-answer")):
            if c[key]:
                h = c[key] / top * half
                shapes.append(f'<rect class="{css}" x="{_num(x)}" y="{_num(down)}" width="{_num(bar)}" '
                              f'height="{_num(h)}"/>')
                down += h
        if c["failed"]:
            shapes.append(f'<rect class="act-bad" data-mark="failed" x="{_num(x)}" y="0" width="{_num(bar)}" '
                          f'height="{_MARK - 2}"/>')
        if c["refused"]:
            shapes.append(f'<rect class="act-bad" data-mark="refused" x="{_num(x)}" '
                          f'y="{CHART_HEIGHT - _MARK + 2}" width="{_num(bar)}" height="{_MARK - 2}"/>')
        # A transparent full-height target so the whole column shows its numbers on hover or tap.
        title = escape(_bucket_title(bucket.start, series.bucket_seconds, c))
        parts.append(f'<g class="act-col" data-start="{bucket.start}"><title>{title}</title>'
                     f'<rect class="act-hit" x="{_num(i * slot)}" y="0" width="{_num(slot)}" '
                     f'height="{CHART_HEIGHT}"/>{"".join(shapes)}</g>')
    label = escape(activity_summary(series))
    return Markup(  # noqa: S704 - numbers formatted above and escaped text only
        f'<svg class="act-chart" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" preserveAspectRatio="none" '
        f'role="img" aria-label="{label}" data-max="{top}"><title>{label}</title>{"".join(parts)}</svg>'
    )


def activity_summary(series: ActivitySeries) -> str:
    """One sentence with the totals of the series (the chart's text alternative)."""
    hours = round(len(series.buckets) * series.bucket_seconds / 3600)
    asked_sign, asked_ecdh = series.total(SIGN, REQUESTER, OK), series.total(ECDH, REQUESTER, OK)
    answered_sign, answered_ecdh = series.total(SIGN, RESPONDER, OK), series.total(ECDH, RESPONDER, OK)
    failed, refused = series.total(None, REQUESTER, FAILED), series.total(None, RESPONDER, REFUSED)
    return (f"Last {hours} h: this signer asked for {asked_sign} signatures and {asked_ecdh} ECDH "
            f"({failed} failed); it answered {answered_sign} signatures and {answered_ecdh} ECDH for peers "
            f"and refused {refused}.")


def ago(iso_or_ts: str | float | None, now: float | None = None) -> str:
    """``"just now"``, ``"12 s ago"``, ``"5 min ago"``, ``"3 h ago"``, ``"2 d ago"`` or ``"never"``."""
    if iso_or_ts is None:
        return "never"
    if isinstance(iso_or_ts, str):
        try:
            ts = datetime.fromisoformat(iso_or_ts.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return "never"
    else:
        ts = float(iso_or_ts)
    seconds = max(0, round((time.time() if now is None else now) - ts))
    if seconds < 5:
        return "just now"
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"
