"""The review dashboard as one static HTML page: inline CSS and SVG, no script, nothing fetched.

Built from the data model alone (``core.dashboard.build``), so the page and
``--output json`` never disagree. Colour is never the only signal: risk,
audit status and held states are also written as words.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from feedbackctl.charts_svg import window_svg
from feedbackctl.core.dashboard import parse_iso

_CSS = """
:root{--fg:#1d1d1f;--muted:#5a5a5f;--line:#d8d8dc;--bg:#fff;--soft:#f5f5f7;--high:#b00020;
--medium:#8a5a00;--low:#1e6b34;--bad:#b00020}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg);
margin:0 auto;max-width:1100px;padding:1rem 1.25rem;line-height:1.45}
h1{font-size:1.5rem;margin:.2rem 0 .4rem}
h2{font-size:1.2rem;margin:2rem 0 .5rem;border-bottom:2px solid var(--line)}

h3{font-size:1.05rem;margin:1.2rem 0 .4rem}h4{font-size:1rem;margin:0 0 .4rem;overflow-wrap:anywhere}
a{color:#0645ad}a:focus,summary:focus,.scroll:focus{outline:3px solid #1a73e8;outline-offset:2px}
nav ul{display:flex;flex-wrap:wrap;gap:.3rem 1rem;padding:0;margin:.5rem 0;list-style:none}
.meta{color:var(--muted);margin:0;overflow-wrap:anywhere}
.counts{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:.5rem;margin:.8rem 0;
padding:0;list-style:none}
.counts li{background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:.4rem .6rem}
.counts b{display:block;font-size:1.3rem}.counts small{display:block;color:var(--muted)}
.counts li.bad{border-color:var(--bad);color:var(--bad)}
.card{border:1px solid var(--line);border-left-width:6px;border-radius:6px;padding:.8rem 1rem;margin:.8rem 0}
.card.risk-HIGH{border-left-color:var(--high)}.card.risk-MEDIUM{border-left-color:var(--medium)}
.card.risk-LOW{border-left-color:var(--low)}
.badge{display:inline-block;font-weight:700;font-size:.8rem;padding:.05rem .45rem;border-radius:4px;
border:1px solid currentColor;margin-right:.3rem;white-space:nowrap}
.risk-HIGH .badge.risk,.badge.risk-HIGH{color:var(--high)}
.badge.risk-MEDIUM,.risk-MEDIUM .badge.risk{color:var(--medium)}
.badge.risk-LOW,.risk-LOW .badge.risk{color:var(--low)}.badge.warn{color:var(--bad)}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.15rem .8rem;margin:.4rem 0;font-size:.92rem}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;overflow-wrap:anywhere}
pre,code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85rem}
pre{background:var(--soft);border:1px solid var(--line);border-radius:4px;padding:.45rem .6rem;
overflow-x:auto;margin:.3rem 0;white-space:pre}
.del{color:#8b0000}.add{color:#0b5a1e}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:.88rem;margin:.4rem 0;min-width:100%}
th,td{border:1px solid var(--line);padding:.3rem .5rem;text-align:left;vertical-align:top}
thead th{background:var(--soft)}td{overflow-wrap:break-word}td code{white-space:nowrap}
.violations{border:2px solid var(--bad);border-radius:6px;padding:.6rem 1rem;background:#fff5f6}
.violations h2{color:var(--bad);border:0;margin-top:.2rem}
tr.violation td{background:#fff0f1}.status-bad{color:var(--bad);font-weight:700}.status-ok{color:var(--low)}
figure{margin:.5rem 0}figcaption{font-size:.85rem;color:var(--muted)}
svg.window-chart{width:100%;height:auto;max-width:640px;display:block}
svg .frame{fill:#fcfcfd;stroke:var(--line)}svg .window{fill:#ffd54f;fill-opacity:.35}
svg .metric{fill:none;stroke:#00758f;stroke-width:1.6}
svg .threshold{stroke:var(--high);stroke-width:1.3;stroke-dasharray:6 4}
svg .axis,svg .label{font-size:14px;fill:#555}svg .label{fill:var(--high)}
.empty{color:var(--muted);font-style:italic}
details{margin:.3rem 0}summary{cursor:pointer}
@media (max-width:600px){body{padding:.6rem}h1{font-size:1.25rem}.card{padding:.6rem}
dl.facts{grid-template-columns:1fr}dl.facts dt{font-weight:600;margin-top:.25rem}
.counts{grid-template-columns:repeat(2,1fr)}
table.stack,.stack tbody,.stack tr,.stack td{display:block;min-width:0;width:100%}
.stack thead{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
.stack tr{border:1px solid var(--line);border-radius:6px;margin:.5rem 0;padding:.3rem .5rem}
.stack td{border:0;padding:.1rem 0}
.stack td::before{content:attr(data-label) ": ";font-weight:600;color:var(--muted)}}
"""

SECTIONS = (
    ("proposals", "Pending proposals"),
    ("recommendations", "Open recommendations"),
    ("captures", "Drift captures awaiting review"),
    ("held", "Frozen, blocked or at a bound"),
    ("automated", "Recent automated changes"),
)


def _e(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "true" if v else "false"
    return html.escape(str(v))


def _change(item: Mapping[str, Any]) -> str:
    if item.get("from") is None and item.get("to") is None:
        return "-"
    return f"{_e(item.get('from'))} → {_e(item.get('to'))}"


def _short(sha: Any) -> str:
    text = str(sha or "")
    return f'<code title="{_e(text)}">{_e(text[:10])}</code>' if text else "-"


def _hours(h: Any) -> str:
    if not isinstance(h, int | float):
        return "-"
    if abs(h) >= 48:
        return f"{h / 24:.1f} days"
    return f"{h:g} h"


def _facts(rows: Sequence[tuple[str, str]]) -> str:
    return '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


Row = tuple[str, Sequence[str]]  # (class of the row, its cells as HTML)


def _table(head: Sequence[str], rows: Sequence[Row], label: str) -> str:
    """A table with column headers; on a phone each row stacks, each cell labelled by its header."""
    cols = "".join(f'<th scope="col">{h}</th>' for h in head)
    body = "".join(
        f'<tr class="{cls}">'
        + "".join(f'<td data-label="{h}">{c}</td>' for h, c in zip(head, cells, strict=True))
        + "</tr>"
        for cls, cells in rows
    )
    return (
        f'<div class="scroll" role="region" aria-label="{_e(label)}" tabindex="0"><table class="stack">'
        f"<thead><tr>{cols}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _evidence(items: Sequence[Mapping[str, Any]], what: str) -> str:
    if not items:
        return '<p class="empty">No metric evidence recorded.</p>'
    out = []
    for ev in items:
        summary = _e(ev.get("summary") or ev.get("metric"))
        start, end = parse_iso(ev.get("windowStart")), parse_iso(ev.get("windowEnd"))
        series = ev.get("series")
        if series and start is not None and end is not None:
            label = f"{ev.get('metric')} for {what}: {ev.get('summary')}"
            svg = window_svg(label, series, (start.timestamp(), end.timestamp()), ev.get("threshold"))
            caption = (
                f"{summary}. Shaded: the {ev.get('windowMinutes')} min window that fired"
                f" ({_e(ev.get('windowStart'))} → {_e(ev.get('windowEnd'))})"
                + ("; dashed: the threshold." if ev.get("threshold") is not None else ".")
            )
            out.append(f"<figure>{svg}<figcaption>{caption}</figcaption></figure>")
        else:
            note = "the series is not in the record; pass --metrics to draw the window"
            out.append(f'<p>Evidence: {summary} <span class="empty">({note})</span></p>')
    return "".join(out)


def _commands(cmds: Mapping[str, Any]) -> str:
    lines = [str(c) for k in ("approve", "ack", "accept", "reject", "dismiss") if (c := cmds.get(k))]
    if not lines:
        return ""
    return (
        '<p>To decide:</p><pre tabindex="0"><code>'
        + "\n".join(html.escape(c) for c in lines)
        + "</code></pre>"
    )


def _diff(lines: Sequence[str]) -> str:
    if not lines:
        return ""
    body = "\n".join(
        f'<span class="{"del" if line.startswith("-") else "add"}">{html.escape(line)}</span>'
        for line in lines
    )
    return (
        f"<details><summary>Claim diff ({len(lines)} lines)</summary><pre><code>{body}</code></pre></details>"
    )


def _proposal(p: Mapping[str, Any]) -> str:
    risk = str(p.get("risk"))
    states = [
        f'<span class="badge risk">{_e(risk)} risk</span>',
        f'<span class="badge">{_e(p.get("status"))}</span>',
    ]
    if p.get("stale"):
        states.append('<span class="badge warn">STALE: must not be applied</span>')
    if p.get("handedOff"):
        states.append('<span class="badge warn">HANDED OFF to a human</span>')
    ack = p.get("ack") or {}
    facts = [
        ("branch", f"<code>{_e(p.get('branch'))}</code>"),
        ("status", _e(p.get("detail"))),
        ("risk", f"{_e(risk)} — {_e(p.get('riskRationale'))}"),
        ("age", f"{_hours(p.get('ageHours'))} (since {_e(p.get('createdAt'))})"),
        ("expires", f"in {_hours(p.get('expiresInHours'))} ({_e(p.get('expiresAt'))})"),
        ("acknowledgment", _e(ack.get("detail"))),
        ("needs review", _e(p.get("reviewReason"))),
        ("rule / source", f"{_e(p.get('rule'))} / {_e(p.get('source'))}"),
    ]
    what = f"{p.get('claim')} {p.get('field')}"
    return (
        f'<article class="card risk-{_e(risk)}" id="{_e(p.get("branch"))}">'
        f"<h4>{_e(p.get('claim'))} · {_e(p.get('field'))}: {_change(p)}</h4>"
        f"<p>{' '.join(states)}</p>{_facts(facts)}"
        + (f"<p><strong>Rationale:</strong> {_e(p.get('summary'))}</p>" if p.get("summary") else "")
        + _diff(p.get("diff") or [])
        + _evidence(p.get("evidence") or [], what)
        + _commands(p.get("commands") or {})
        + "</article>"
    )


def _proposals(doc: Mapping[str, Any]) -> str:
    items = doc["proposals"]
    if not items:
        return '<p class="empty">No proposal waits for review.</p>'
    out = []
    for risk in ("HIGH", "MEDIUM", "LOW", "UNKNOWN"):
        mine = [
            p
            for p in items
            if p["risk"] == risk or (risk == "UNKNOWN" and p["risk"] not in ("HIGH", "MEDIUM", "LOW"))
        ]
        if mine:
            out.append(f'<h3 id="risk-{risk}">{risk} risk ({len(mine)})</h3>')
            out += [_proposal(p) for p in mine]
    return "".join(out)


def _recommendations(doc: Mapping[str, Any]) -> str:
    items = doc["recommendations"]
    if not items:
        return '<p class="empty">No open recommendation.</p>'
    out = []
    for r in items:
        risk = str(r.get("risk") or "UNKNOWN")
        facts = [
            ("sidecar", f"<code>{_e(r.get('path'))}</code>"),
            ("risk", f'<span class="badge risk-{_e(risk)}">{_e(risk)} risk</span>'),
            ("rule", _e(r.get("rule"))),
            ("from", _e(r.get("proposer"))),
            ("confidence", _e(r.get("confidence"))),
            ("recommended at", _e(r.get("madeAt"))),
        ]
        what = f"{r.get('claim')} {r.get('field')}"
        out.append(
            f'<article class="card risk-{_e(risk)}"><h4>{_e(r.get("claim"))} · {_e(r.get("field"))}: '
            f"{_change(r)}</h4>{_facts(facts)}{_evidence(r.get('evidence') or [], what)}"
            f"{_commands(r.get('commands') or {})}</article>"
        )
    return "".join(out)


def _commit(item: Mapping[str, Any]) -> str:
    return _short(item.get("commit"))


def _tags(item: Mapping[str, Any]) -> str:
    return _e(", ".join(item["tags"]) or "-")


def _close(item: Mapping[str, Any]) -> str:
    return f"<code>{_e(item['command'])}</code>"


def _audited(item: Mapping[str, Any]) -> str:
    if item["audit"] != "violation":
        return '<span class="status-ok">ok</span>'
    return f'<span class="status-bad">VIOLATION: {_e(", ".join(item["violations"]))}</span>'


def _rule(item: Mapping[str, Any]) -> str:
    return f"<strong>{_e(item.get('rule'))}</strong>"


# The list sections shown as tables: (column, the item's key to show, or how to show it).
Show = Callable[[Mapping[str, Any]], str]
Column = tuple[str, str | Show]
_LISTS: dict[str, tuple[Column, ...]] = {
    "captures": (
        ("commit", _commit), ("when (UTC)", "at"), ("who", "author"), ("claim", "claim"), ("field", "field"),
        ("git → live", _change), ("tags", _tags), ("close it with", _close),
    ),
    "automated": (
        ("commit", _commit), ("when (UTC)", "at"), ("kind", "kind"), ("claim", "claim"), ("field", "field"),
        ("from → to", _change), ("source", "source"), ("rule", "rule"), ("risk", "risk"), ("tags", _tags),
        ("evidence", "evidence"), ("audit verify", _audited),
    ),
    "violations": (
        ("commit", _commit), ("when (UTC)", "at"), ("kind", "kind"), ("claim", "claim"), ("field", "field"),
        ("rule", _rule), ("why", "detail"),
    ),
}  # fmt: skip


def _list_table(name: str, items: Sequence[Mapping[str, Any]], row_class: Show, label: str) -> str:
    columns = _LISTS[name]
    rows = [
        (row_class(item), [_e(item.get(how)) if isinstance(how, str) else how(item) for _, how in columns])
        for item in items
    ]
    return _table([head for head, _ in columns], rows, label)


def _captures(doc: Mapping[str, Any]) -> str:
    if not doc["captures"]:
        return '<p class="empty">No drift capture awaits review.</p>'
    return _list_table("captures", doc["captures"], lambda _: "capture", "drift captures awaiting review")


def _held_table(
    items: Sequence[Mapping[str, Any]] | None, label: str, empty: str, wanted: bool = False
) -> str:
    if items is None:
        return f'<p class="empty">{empty}</p>'
    if not items:
        return f'<p class="empty">None {label}.</p>'
    head = ["claim", "field", "value", *(["signals want"] if wanted else []), "guards", "why", "what to do"]
    rows = []
    for h in items:
        cells = [_e(h["claim"]), _e(h["field"]), _e(h["value"])]
        if wanted:
            cells.append(_e(h["wanted"]))
        cells += [
            _e(", ".join(h["guards"])),
            _e(h["reason"]),
            f"<code>{_e(h['command'])}</code>" if h["command"] else "-",
        ]
        rows.append(("held", cells))
    return _table(head, rows, label)


def _held(doc: Mapping[str, Any]) -> str:
    return (
        '<h3 id="frozen">Frozen by flap detection</h3>'
        + _held_table(doc["frozen"], "frozen", "")
        + '<h3 id="blocked">Blocked by a guard</h3>'
        + _held_table(
            doc["blocked"],
            "blocked",
            "Not evaluated: pass --metrics to see which changes guards block.",
            wanted=True,
        )
        + '<h3 id="bounds">At a human-written bound</h3>'
        + _held_table(doc["atBounds"], "at a bound", "")
    )


def _automated(doc: Mapping[str, Any]) -> str:
    if not doc["automated"]:
        return '<p class="empty">No automated change on this branch.</p>'

    def row_class(item: Mapping[str, Any]) -> str:
        return "violation" if item["audit"] == "violation" else "ok"

    return _list_table("automated", doc["automated"], row_class, "recent automated changes")


def _violations(doc: Mapping[str, Any]) -> str:
    audit = doc["audit"]
    if audit["ok"]:
        return (
            f'<p class="status-ok">audit verify: ok — {audit["commits"]} feedbackctl commit(s), '
            f"{audit['changes']} change(s), no violations.</p>"
        )
    problems = "".join(f"<p>Audit could not finish: {_e(p.get('message'))}</p>" for p in audit["problems"])
    n = len(audit["violations"])
    return (
        '<section class="violations" aria-labelledby="violations-h">'
        f'<h2 id="violations-h">AUDIT VIOLATIONS: {n} — audit verify failed</h2>'
        "<p>These feedbackctl commits broke a rule that git can prove; investigate before approving more.</p>"
        + (
            _list_table("violations", audit["violations"], lambda _: "violation", "audit violations")
            if audit["violations"]
            else ""
        )
        + problems
        + "</section>"
    )


def _count(label: str, value: Any, more: str) -> str:
    bad = ' class="bad"' if label == "audit violations" and value else ""
    small = f"<small>{_e(more)}</small>" if more else ""
    return f"<li{bad}><b>{_e(value)}</b>{label}{small}</li>"


def render(doc: Mapping[str, Any]) -> str:
    """The page: byte-identical for the same document."""
    c = doc["counts"]
    risk = c["proposalsByRisk"]
    blocked = "not evaluated" if c["blocked"] is None else c["blocked"]
    by_risk = f"HIGH {risk['HIGH']} · MEDIUM {risk['MEDIUM']} · LOW {risk['LOW']}"
    counts = [
        ("pending proposals", c["proposals"], by_risk),
        ("open recommendations", c["recommendations"], ""),
        ("captures to review", c["captures"], ""),
        ("frozen fields", c["frozen"], ""),
        ("blocked changes", blocked, ""),
        ("at a bound", c["atBounds"], ""),
        ("audit violations", c["violations"], "audit verify"),
    ]
    title = f"feedbackctl review dashboard — {doc['ref']}"
    body = {
        "proposals": _proposals(doc),
        "recommendations": _recommendations(doc),
        "captures": _captures(doc),
        "held": _held(doc),
        "automated": _automated(doc),
    }
    nav = "".join(f'<li><a href="#{key}">{name}</a></li>' for key, name in SECTIONS)
    problems = "".join(f"<li>{_e(p)}</li>" for p in doc["problems"])
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # An empty inline icon: browsers would otherwise fetch /favicon.ico from wherever it is published.
        '<link rel="icon" href="data:,">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<header><h1>{_e(title)}</h1>",
        f'<p class="meta">Built from <code>{_e(doc["ref"])}</code> at commit <code>{_e(doc["commit"])}</code>'
        + (f" (proposal branches from remote <code>{_e(doc['remote'])}</code>)" if doc.get("remote") else "")
        + f", as of {_e(doc['generatedAt'])}.</p>",
        '<ul class="counts">' + "".join(_count(k, v, more) for k, v, more in counts) + "</ul>",
        f'<nav aria-label="sections"><ul>{nav}</ul></nav></header><main>',
        _violations(doc),
    ]
    if problems:
        parts.append(
            f'<section aria-label="problems"><h2>Could not read everything</h2><ul>{problems}</ul></section>'
        )
    for key, name in SECTIONS:
        parts.append(f'<section aria-labelledby="{key}"><h2 id="{key}">{name}</h2>{body[key]}</section>')
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"
