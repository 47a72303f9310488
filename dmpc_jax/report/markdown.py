"""Markdown pieces shared by the report modules: a rate with its interval, falls by cause, the
falls section of an evaluation page."""

from __future__ import annotations

import numpy as np


def format_rate(r: dict) -> str:
    """``20.3% [13.6, 29.3]``: a rate with its Wilson 95% interval, in percent."""
    lo, hi = r["ci95"]
    return f"{100 * r['rate']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def format_falls(f: dict) -> str:
    """``51 falls (knee_contact 40, base_contact 8), median 6.1 s``: counts by cause (a fall may
    have several)."""
    if not f["count"]:
        return "no falls"
    causes = ", ".join(f"{c} {n}" for c, n in sorted(f["by_cause"].items(), key=lambda x: -x[1])
                       if n)  # fmt: skip
    return f"{f['count']} falls ({causes}), median {f['median_time_s']:.1f} s"


def falls_section(controllers: dict) -> list[str]:
    """Markdown: per controller and env model, the falls by cause, the spread of time and pitch
    at the fall, and every fall (episode, time, roll, pitch, causes) in a collapsed list."""
    lines = ["## Falls", "",
             "Cause counts at the failing step (several causes can hold at once); roll and pitch "
             "in rad (pitch positive nose down, atan2 form: a nose-over exceeds pi/2). `strict`: "
             "feet-only model, where base and knee contact end an episode; `paper`: full "
             "collision geometry, only roll > 1.0 / pitch > 1.6 end it.", "",
             "| controller | model | falls by cause | time at fall (s): p10 / median / p90 | "
             "pitch at fall (rad): p10 / median / p90 |", "|---|---|---|---|---|"]  # fmt: skip
    details = []
    for name, row in controllers.items():
        for model, f in row.get("falls", {}).items():
            ev = f["events"]
            if ev:
                t = np.percentile([e["time_s"] for e in ev], [10, 50, 90])
                p = np.percentile([e["pitch"] for e in ev], [10, 50, 90])
                ts, ps = " / ".join(f"{x:.1f}" for x in t), " / ".join(f"{x:.2f}" for x in p)
            else:
                ts = ps = "-"
            lines.append(f"| {name} | {model} | {format_falls(f)} | {ts} | {ps} |")
            if ev:
                items = "; ".join(
                    f"ep {e['episode']} {e['time_s']:.2f} s r {e['roll']:+.2f} p {e['pitch']:+.2f} "
                    f"({'+'.join(e['causes'])})" for e in ev
                )  # fmt: skip
                details += [f"<details><summary>{name}, {model}: every fall</summary>", "",
                            items, "", "</details>", ""]  # fmt: skip
    return lines + [""] + details
