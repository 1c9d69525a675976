"""The authority writer: minimal claim edits, committed with trailers and CAS.

Commits are built in the object database on top of the commit that was read
(never a checkout or the shared index), and the branch is moved with
compare-and-swap, so two concurrent runs cannot both apply a change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.kustomize_edit import Expected, override_in_overlay, set_rendered_value
from feedbackctl.authority.overlay_trace import RenderedLocation
from feedbackctl.authority.trailers import RUN_KEY, format_message
from feedbackctl.authority.yamlsplice import edit_value
from feedbackctl.core.models import Claim, Decision, Scalar
from feedbackctl.core.proposal import Proposal
from feedbackctl.core.schema import violation
from feedbackctl.errors import ClaimError, ConflictError


@dataclass
class Plan:
    """One commit to write: file edits plus the audit record."""

    subject: str
    body: str = ""
    trailers: list[dict[str, str]] = field(default_factory=list)
    edits: dict[str, bytes | None] = field(default_factory=dict)

    @property
    def message(self) -> str:
        return format_message(self.subject, self.body, self.trailers)


class Staging:
    """File texts at a base commit, edited in memory before a commit is built."""

    def __init__(self, repo: GitRepo, base: str) -> None:
        self.repo = repo
        self.base = base
        self.texts: dict[str, str] = {}
        # What staged edits of Kustomize-rendered claims must render (checked by re-rendering).
        self.rendered: Expected = {}

    def text(self, path: str) -> str:
        if path not in self.texts:
            raw = self.repo.read_file(self.base, path)
            if raw is None:
                raise ClaimError(path, f"{path} does not exist at {self.base[:8]}; re-run")
            self.texts[path] = raw.decode("utf-8")
        return self.texts[path]

    def set_value(
        self, claim: Claim, field_name: str, value: Scalar, *, batch: bool = False, override: bool = False
    ) -> str:
        """Splice ``spec.<field>`` of ``claim`` to ``value``; returns the edited path.

        The value must fit the claim's schema rules (XRD, policy ranges) or it
        is refused. A claim rendered by Kustomize is edited where the value is
        set, then every overlay is re-rendered to prove that exactly the
        intended values changed. A value shared by several claims (a base) is
        refused unless ``batch`` says the caller means to change all of them,
        or ``override`` asks for a new op in this claim's own overlay instead
        (a structural edit). Both are for proposals, never auto-tune.
        """
        loc = claim.locations.get(f"spec.{field_name}")
        if loc is None:
            raise ClaimError(
                claim.name,
                f"spec.{field_name} is not set in {claim.path}; "
                "adding a field is a structural edit, make it by hand",
            )
        if value is None:
            raise ClaimError(claim.name, f"cannot set spec.{field_name} to null")
        problem = violation(claim.schema.get(field_name, ()), value)
        if problem is not None:
            raise ClaimError(claim.name, f"schema: {problem}; not written")
        if isinstance(loc, RenderedLocation):
            if override and not loc.reason and len(loc.shared_by) > 1:
                return override_in_overlay(self, claim, field_name, value)
            return set_rendered_value(self, claim, field_name, value, batch=batch)
        text = self.text(loc.path)
        self.texts[loc.path] = edit_value(loc.path, text, loc.doc_index, ("spec", field_name), value)
        return loc.path

    def put(self, path: str, content: str | None) -> None:
        self.texts[path] = content if content is not None else ""
        if content is None:
            self.texts.pop(path)

    def edits(self, deleted: Sequence[str] = ()) -> dict[str, bytes | None]:
        out: dict[str, bytes | None] = {p: t.encode("utf-8") for p, t in self.texts.items()}
        for p in deleted:
            out[p] = None
        return out


ACKNOWLEDGED_KEY = "Feedback-Acknowledged"


def write(
    repo: GitRepo,
    branch: str,
    base: str,
    plan: Plan,
    now: datetime,
    author: tuple[str, str] | None = None,
) -> str:
    """Commit ``plan`` on ``base`` and move ``branch`` to it with CAS.

    Raises ConflictError when the branch moved since ``base`` was read; the
    caller re-reads, re-evaluates and tries again.
    """
    new = repo.write_commit(base, plan.edits, plan.message, now, author=author)
    repo.advance(branch, new, base)
    return new


def change_subject(act: str, claim: str, field_name: str, old: object, new: object) -> str:
    """A feedbackctl commit's subject line: ``feedbackctl: <act> <claim> spec.<field> <old> -> <new>``."""
    return f"feedbackctl: {act} {claim} spec.{field_name} {old} -> {new}"


def trailer(
    kind: str,
    claim: str,
    field_name: str | None = None,
    *,
    old: Scalar = None,
    new: Scalar = None,
    source: str | None = None,
    rule: str | None = None,
    risk: str | None = None,
    evidence: str | None = None,
    tags: Sequence[str] = (),
    run: str | None = None,
) -> dict[str, str]:
    """One change's ``Feedback-*`` trailers, in the order docs/contracts.md gives, empty keys left out.

    ``run`` is the ``Feedback-Run`` id of an automated change (authority/runid.py).
    """
    values: Mapping[str, object] = {
        "Feedback-Kind": kind,
        "Feedback-Claim": claim,
        "Feedback-Field": f"spec.{field_name}" if field_name else None,
        "Feedback-From": old,
        "Feedback-To": new,
        "Feedback-Source": source,
        "Feedback-Rule": rule,
        "Feedback-Risk": risk,
        "Feedback-Evidence": evidence,
        "Feedback-Tags": ", ".join(tags) if tags else None,
        RUN_KEY: run,
    }
    return {k: _trailer_text(v) for k, v in values.items() if v is not None}


def _trailer_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def decision_trailer(
    kind: str, d: Decision, *, evidence: str | None = None, tags: Sequence[str] = (), run: str | None = None
) -> dict[str, str]:
    """The trailers of one decided change: the decision's own values and evidence.

    ``evidence`` replaces the decision's evidence summaries (an agent's own words, patterns/observe.py).
    """
    out = trailer(
        kind,
        d.claim,
        d.field,
        old=d.current,
        new=d.recommended,
        source=d.source,
        rule=d.rule,
        risk=d.risk,
        evidence="; ".join(e.summary for e in d.evidence) if evidence is None else evidence,
        tags=tags,
        run=run,
    )
    if d.acknowledged:
        # The ack commit on the authority branch that lifted the risk ceiling; audit replays it.
        out[ACKNOWLEDGED_KEY] = d.acknowledged
    return out


def proposal_trailer(
    kind: str,
    p: Proposal,
    *,
    new: Scalar = None,
    risk: str | None = None,
    evidence: bool = False,
    tags: Sequence[str] = (),
) -> dict[str, str]:
    """The trailers of a commit about proposal ``p``: its own values unless ``new``/``risk`` say otherwise.

    ``evidence`` adds the record's evidence line (docs/contracts.md lists the keys).
    """
    return trailer(
        kind,
        p.claim,
        p.field,
        old=p.old,
        new=p.new if new is None else new,
        source=p.source,
        rule=p.rule,
        risk=p.risk if risk is None else risk,
        evidence=(p.evidence_line or None) if evidence else None,
        tags=tags,
    )


def commit_plan(
    repo: GitRepo,
    branch: str,
    base: str,
    plan: Plan,
    now: datetime,
    commits: list[dict[str, Any]],
    *,
    dry_run: bool,
    author: tuple[str, str] | None = None,
) -> bool:
    """Commit ``plan`` (with ``--dry-run``, only describe it) and record it in ``commits``.

    ``author``: the person, for a human act; default the tool's bot identity.

    False when the branch moved since ``base`` was read: re-read and re-evaluate.
    """
    files = sorted(plan.edits)
    if dry_run:
        commits.append({"sha": "(dry-run)", "subject": plan.subject, "files": files})
        return True
    try:
        sha = write(repo, branch, base, plan, now, author=author)
    except ConflictError:
        return False
    commits.append({"sha": sha, "branch": branch, "subject": plan.subject, "files": files})
    return True
