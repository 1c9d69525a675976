"""``audit verify``'s checks of one feedback commit against its parent: pure.

A commit is judged by what git says: the claims at its parent and after it
(``runreplay.Tree``), its trailer groups and changed paths. The checks here
are the ones only a commit has (trailers that match the diff, nothing changed
that no trailer names, bounds left to humans, drift captures tagged); the
automated changes are then replayed through autotune's own guards by
``core/runreplay.py``. The shell (``patterns/audit.py``) reads git and hands
in ``Inputs``: the parent's policy, the histories and the two ports that need
git (docs/audit.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from feedbackctl.core.models import AUTOMATED_KINDS, HUMAN_KINDS, MARKER_KINDS, Claim, Scalar
from feedbackctl.core.policy import Policy
from feedbackctl.core.rules import RuleId
from feedbackctl.core.runreplay import Acknowledge, RunHistories, Tree, replay_run, text

DRIFT_TAGS = ("break-glass", "requires-review")


class CommitLike(Protocol):
    """One commit as git read it (an ``authority.commits.Commit`` is one)."""

    @property
    def sha(self) -> str: ...

    @property
    def at(self) -> datetime: ...

    @property
    def run(self) -> str | None: ...

    @property
    def changes(self) -> Sequence[Mapping[str, str]]: ...

    @property
    def paths(self) -> Sequence[str]: ...

    @property
    def stray(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class Protected:
    """The human-authored files no automated commit may change (besides each claim's ``autoTune``)."""

    config_file: str = ".feedbackctl.yaml"
    policies_dir: str = "policies"


@dataclass(frozen=True)
class Inputs:
    """What the shell read from git for one commit with a parent."""

    policy: Policy  # at the parent
    protected: Protected
    histories: Callable[[Sequence[Claim]], RunHistories]  # of these claims at the parent, now = the commit
    acknowledge: Acknowledge
    validated_in: Callable[[Mapping[str, str]], str | None]  # what is wrong with Feedback-Validated-In


@dataclass(frozen=True)
class Violation:
    commit: str
    at: datetime
    rule: str
    detail: str
    claim: str | None = None
    field: str | None = None
    kind: str | None = None
    subject: str = ""

    def json(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "subject": self.subject,
            "kind": self.kind,
            "claim": self.claim,
            "field": f"spec.{self.field}" if self.field else None,
            "rule": self.rule,
            "detail": self.detail,
        }


def scalars(claim: Claim) -> dict[str, Scalar]:
    """A claim's top-level spec values that are scalars: what a trailer can name."""
    return {k: v for k, v in claim.spec.items() if v is None or isinstance(v, int | float | str | bool)}


class Check:
    """Checks one commit against its parent; collects violations."""

    def __init__(
        self, c: CommitLike, parent: Tree, after: Tree, subject: str, protected: Protected = Protected()
    ) -> None:
        self.c = c
        self.parent = parent
        self.after = after
        self.subject = subject
        self.protected = protected
        self.found: list[Violation] = []

    def flag(self, rule: str, detail: str, group: Mapping[str, str] | None = None) -> None:
        g = group or {}
        f = g.get("Feedback-Field")
        self.found.append(
            Violation(
                self.c.sha,
                self.c.at,
                rule,
                detail,
                claim=g.get("Feedback-Claim"),
                field=f.removeprefix("spec.") if f else None,
                kind=g.get("Feedback-Kind"),
                subject=self.subject,
            )
        )

    @property
    def kinds(self) -> set[str]:
        return {g.get("Feedback-Kind", "") for g in self.c.changes}

    def bounds_tampering(self) -> None:
        """Bounds are human-authored: only a human-decision kind may change them."""
        if self.kinds <= HUMAN_KINDS:
            return
        policies = self.protected.policies_dir
        for p in self.c.paths:
            if p == self.protected.config_file or p.startswith(f"{policies}/"):
                self.flag(
                    RuleId.BOUNDS_TAMPERING, f"an automated commit changed {p}; policy is human-authored"
                )
        before = {c.name: c for c in self.parent.claims}
        for claim in self.after.claims:
            old = before.get(claim.name)
            if old is not None and old.spec.get("autoTune") != claim.spec.get("autoTune"):
                self.flag(
                    RuleId.BOUNDS_TAMPERING,
                    f"an automated commit changed spec.autoTune of {claim.name} "
                    f"({old.spec.get('autoTune')} -> {claim.spec.get('autoTune')}); "
                    "bounds are human-authored",
                    {"Feedback-Claim": claim.name},
                )

    def diff(self) -> dict[tuple[str, str], tuple[Scalar, Scalar]]:
        """(claim, field) -> (old, new) for every spec scalar the commit changed."""
        before = {c.name: scalars(c) for c in self.parent.claims}
        after = {c.name: scalars(c) for c in self.after.claims}
        out: dict[tuple[str, str], tuple[Scalar, Scalar]] = {}
        for name in sorted(set(before) | set(after)):
            if name not in before or name not in after:
                state = "created" if name not in before else "deleted"
                self.flag(
                    RuleId.UNDECLARED_CHANGE,
                    f"claim {name} {state} by a feedbackctl commit",
                    {"Feedback-Claim": name},
                )
                continue
            for f in sorted(set(before[name]) | set(after[name])):
                old, new = before[name].get(f), after[name].get(f)
                if old != new:
                    out[(name, f)] = (old, new)
        return out

    def trailers(self, changed: dict[tuple[str, str], tuple[Scalar, Scalar]]) -> list[Mapping[str, str]]:
        """Every group complete and consistent with the diff; returns the value-changing groups."""
        declared: set[tuple[str, str]] = set()
        valued: list[Mapping[str, str]] = []
        for g in self.c.changes:
            kind, claim, f = g.get("Feedback-Kind"), g.get("Feedback-Claim"), g.get("Feedback-Field")
            if not kind:
                self.flag(RuleId.TRAILER_INCOMPLETE, "a Feedback-* trailer group has no Feedback-Kind", g)
                continue
            if kind in MARKER_KINDS:
                if claim and f and (claim, f.removeprefix("spec.")) in changed:
                    declared.add((claim, f.removeprefix("spec.")))  # reported once, here
                    self.flag(RuleId.TRAILER_DIFF, f"a {kind} marker changed spec value {f} of {claim}", g)
                continue
            if not claim or not f:
                if kind in AUTOMATED_KINDS:
                    self.flag(
                        RuleId.TRAILER_INCOMPLETE, f"{kind} without Feedback-Claim and Feedback-Field", g
                    )
                continue
            name = f.removeprefix("spec.")
            declared.add((claim, name))
            if self.parent.claim(claim) is None:
                self.flag(RuleId.TRAILER_DIFF, f"claim {claim} does not exist at the parent", g)
                continue
            old, new = changed.get((claim, name), (None, None))
            if (claim, name) not in changed:
                value = self.parent.claim(claim).value(name)  # type: ignore[union-attr]
                old = new = value if isinstance(value, int | float | str | bool) else None
            said_from, said_to = g.get("Feedback-From", ""), g.get("Feedback-To", g.get("Feedback-From", ""))
            if said_from != text(old) or said_to != text(new):
                self.flag(
                    RuleId.TRAILER_DIFF,
                    f"trailers say {f} {said_from or '(none)'} -> {said_to or '(none)'}, "
                    f"the diff says {text(old) or '(none)'} -> {text(new) or '(none)'}",
                    g,
                )
            if kind in AUTOMATED_KINDS or kind == "drift-capture":
                valued.append(g)
        for (claim, name), (old, new) in changed.items():
            if (claim, name) not in declared:
                self.flag(
                    RuleId.UNDECLARED_CHANGE,
                    f"spec.{name} of {claim} changed {text(old)} -> {text(new)} with no trailer for it",
                    {"Feedback-Claim": claim, "Feedback-Field": f"spec.{name}"},
                )
        return valued

    def beyond_trailers(self) -> None:
        """An automated commit may touch only the fields its trailers name.

        The scalar diff covers top-level values; this covers the rest of each
        claim: nested spec fields (``spec.concurrency.reserved``) and
        metadata annotations and labels (a baseline annotation would move the
        change cap).
        """
        if not self.kinds & AUTOMATED_KINDS:
            return
        before = {c.name: c for c in self.parent.claims}
        for claim in self.after.claims:
            old = before.get(claim.name)
            if old is None:
                continue
            for key in sorted(set(old.spec) | set(claim.spec)):
                a, b = old.spec.get(key), claim.spec.get(key)
                if (
                    key == "autoTune"
                    or a == b
                    or not (isinstance(a, Mapping | list) or isinstance(b, Mapping | list))
                ):
                    continue  # bounds-tampering and the scalar diff speak for these
                self.flag(
                    RuleId.UNDECLARED_CHANGE,
                    f"an automated commit changed spec.{key} of {claim.name}, which no trailer names",
                    {"Feedback-Claim": claim.name, "Feedback-Field": f"spec.{key}"},
                )
            for part in ("annotations", "labels"):
                a_meta, b_meta = getattr(old, part, None), getattr(claim, part, None)
                if a_meta != b_meta:
                    self.flag(
                        RuleId.UNDECLARED_CHANGE,
                        f"an automated commit changed metadata.{part} of {claim.name} "
                        f"({_meta_diff(a_meta, b_meta)}); only the named field may change",
                        {"Feedback-Claim": claim.name},
                    )

    def new_errors(self) -> None:
        known = {str(e) for e in self.parent.errors}
        for e in self.after.errors:
            if str(e) not in known:
                self.flag(RuleId.SCHEMA, f"the commit left a claim unreadable: {e}")


def _meta_diff(a: object, b: object) -> str:
    old = dict(a) if isinstance(a, Mapping) else {}
    new = dict(b) if isinstance(b, Mapping) else {}
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(str(k) for k in keys)


def misplaced(c: CommitLike, subject: str) -> list[Violation]:
    return [
        Violation(
            c.sha,
            c.at,
            RuleId.TRAILER_MISPLACED,
            f"Feedback-Kind: {kind} outside the final trailer block (git does not read it as a trailer); "
            "the commit counts as automated but declares nothing",
            kind=kind,
            subject=subject,
        )
        for kind in c.stray
    ]


def check_commit(
    c: CommitLike,
    parent: Tree | None,
    after: Tree,
    unreadable: str | None,
    subject: str,
    inputs: Inputs | None,
) -> list[Violation]:
    """Every violation of commit ``c`` against its ``parent`` (``inputs``: what the shell read for it)."""
    if parent is None or inputs is None:
        detail = "a root commit carries feedbackctl trailers; there is no parent to compare with"
        return [Violation(c.sha, c.at, RuleId.TRAILER_DIFF, detail, subject=subject)]
    if unreadable is not None:
        check = Check(c, parent, parent, subject, inputs.protected)
        check.bounds_tampering()
        check.flag(RuleId.SCHEMA, f"the commit leaves the repo unreadable: {unreadable}")
        return check.found
    check = Check(c, parent, after, subject, inputs.protected)
    check.new_errors()
    check.bounds_tampering()
    valued = check.trailers(check.diff())
    check.beyond_trailers()
    tuned = [
        g
        for g in valued
        if g.get("Feedback-Kind") in AUTOMATED_KINDS and parent.claim(g["Feedback-Claim"]) is not None
    ]
    if tuned:
        names = {g["Feedback-Claim"] for g in tuned}
        histories = inputs.histories([cl for cl in parent.claims if cl.name in names])
        replay_run(
            tuned,
            parent,
            after,
            c.at,
            c.run,
            histories,
            inputs.policy,
            check.flag,
            inputs.acknowledge,
            inputs.validated_in,
        )
    for g in valued:
        if g.get("Feedback-Kind") == "drift-capture":
            tags = {t.strip() for t in g.get("Feedback-Tags", "").split(",")}
            missing = [t for t in DRIFT_TAGS if t not in tags]
            if missing:
                check.flag(RuleId.DRIFT_TAGS, f"a drift capture must be tagged {', '.join(missing)}", g)
    return check.found
