"""Claims out of YAML files: one bad file or document never hides the others.

A document is a claim when its ``kind`` ends in ``Claim`` (or is one of the
configured kinds). Other documents (recommendations, proposals, XRDs, ...)
are skipped silently, and so are files whose bytes cannot hold a claim kind at
all, so a Helm template elsewhere in the repo never turns into an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from sys import intern
from typing import Any

from feedbackctl.authority.yamldoc import Doc, check_size, content_size, format_key_path, load_documents
from feedbackctl.core.models import Claim
from feedbackctl.errors import ClaimError, FeedbackError

# (repo-relative path, git blob id, raw content)
ClaimFile = tuple[str, str, bytes]

_KUSTOMIZATION_FILES = frozenset({"kustomization.yaml", "kustomization.yml", "Kustomization"})
_DNS_1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_MAX_NAME = 253
# What git refuses in a ref name (git check-ref-format), checked first for a precise message.
_GIT_REFUSED = (("..", "'..'"), ("@{", "'@{'"), ("~", "'~'"), ("^", "'^'"), (":", "':'"),
                ("?", "'?'"), ("*", "'*'"), ("[", "'['"), ("\\", "a backslash"), (" ", "a space"),
                ("/", "'/' (a path separator)"))  # fmt: skip
_RENAME = "rename it (lowercase letters, digits, '-' and '.')"


@dataclass(frozen=True)
class ClaimSet:
    claims: list[Claim] = field(default_factory=list)
    errors: list[FeedbackError] = field(default_factory=list)


class DuplicateClaimError(ClaimError):
    """Two documents define the same claim name; neither is used."""

    def __init__(self, claim: str, places: Sequence[str]) -> None:
        super().__init__(claim, "defined more than once")
        times = "twice" if len(places) == 2 else f"{len(places)} times"
        listed = ", ".join(places[:-1]) + f" and {places[-1]}"
        fix = "rename one" if len(places) == 2 else "rename all but one"
        self.message = f"claim '{claim}' is defined {times}: {listed}; {fix}"
        self.args = (self.message,)


def parse_file(
    path: str, blob: str, content: bytes, kinds: Collection[str] | None = None
) -> tuple[list[tuple[Claim, int]], list[FeedbackError]]:
    """The claims of one file with the line each starts on, and its errors."""
    found: list[tuple[Claim, int]] = []
    errors: list[FeedbackError] = []
    # A blob too big to read is reported, not skipped for lacking a claim kind.
    unread = content_size(content) != len(content)
    if path.rpartition("/")[2] in _KUSTOMIZATION_FILES or not (unread or _may_hold_claims(content, kinds)):
        return found, errors
    try:
        docs = load_documents(path, _decode(path, content))
    except FeedbackError as e:
        return found, [e]
    for doc in docs:
        try:
            claim = _claim(path, blob, doc, kinds)
        except FeedbackError as e:
            errors.append(e)
            continue
        if claim is not None:
            found.append((claim, doc.line))
    return found, errors


FileParser = Callable[
    [str, str, bytes, Collection[str] | None], tuple[list[tuple[Claim, int]], list[FeedbackError]]
]


def parse_claims(
    files: Sequence[ClaimFile], kinds: Collection[str] | None = None, *, parser: FileParser = parse_file
) -> ClaimSet:
    """Every claim in ``files``; errors name the file and line, and skip only their part."""
    found: list[tuple[Claim, int]] = []
    errors: list[FeedbackError] = []
    for path, blob, content in files:
        in_file, problems = parser(path, blob, content, kinds)
        found.extend(in_file)
        errors.extend(problems)
    claims, duplicates = _without_duplicates(found)
    return ClaimSet(claims, errors + duplicates)


def is_claim_kind(kind: object, kinds: Collection[str] | None = None) -> bool:
    if not isinstance(kind, str):
        return False
    return kind in kinds if kinds else kind.endswith("Claim")


def validate_claim_name(name: str) -> None:
    """Refuse names that git refuses in refs, that escape a directory, or that Kubernetes refuses."""
    problem = claim_name_problem(name)
    if problem is not None:
        raise ClaimError(_printable(name), f"invalid claim name: {problem}; {_RENAME}")


def claim_name_problem(name: str) -> str | None:
    if not name:
        return "it is empty"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        return "it contains a control character"
    if not name.isascii():
        return "it contains non-ASCII characters"
    for text, shown in _GIT_REFUSED:
        if text in name:
            return f"it contains {shown}"
    if name[0] in "-.":
        return f"it starts with '{name[0]}'"
    if name.endswith(".lock"):
        return "it ends with '.lock', which git refuses"
    if len(name) > _MAX_NAME:
        return f"it is longer than {_MAX_NAME} characters"
    if name.lower() != name:
        return "it contains uppercase letters"
    if not _DNS_1123_SUBDOMAIN.fullmatch(name):
        return "it is not a Kubernetes (DNS-1123) name"
    return None


def _may_hold_claims(content: bytes, kinds: Collection[str] | None) -> bool:
    if not kinds:
        return b"Claim" in content
    return any(kind.encode() in content for kind in kinds)


def _decode(path: str, content: bytes) -> str:
    check_size(path, content_size(content))
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as e:
        line = content.count(b"\n", 0, e.start) + 1
        raise FeedbackError(
            f"{path}:{line}: not valid UTF-8 (byte 0x{content[e.start]:02x} at offset {e.start}); "
            "save the file as UTF-8"
        ) from None


def _claim(path: str, blob: str, doc: Doc, kinds: Collection[str] | None) -> Claim | None:
    data = doc.data
    if not isinstance(data, dict) or not is_claim_kind(data.get("kind"), kinds):
        return None
    kind = str(data["kind"])
    where = f"{path}:{doc.line}"
    metadata = data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if name is None or name == "":
        raise FeedbackError(f"{where}: {kind} document has no metadata.name; add one")
    if not isinstance(name, str):
        raise FeedbackError(
            f"{where}: {kind} metadata.name must be a string, not {_yaml_type(name)}; quote it"
        )
    problem = claim_name_problem(name)
    if problem is not None:
        raise ClaimError(_printable(name), f"{where}: invalid claim name: {problem}; {_RENAME}")
    assert isinstance(metadata, dict)
    spec = data.get("spec")
    if spec is None:
        raise ClaimError(name, f"{where}: {kind} document has no spec; add a spec mapping")
    if not isinstance(spec, dict):
        raise ClaimError(name, f"{where}: spec must be a mapping, not {_yaml_type(spec)}; fix spec")
    namespace = metadata.get("namespace")
    return Claim(
        name=name,
        kind=kind,
        api_version=str(data.get("apiVersion") or ""),
        # Every claim spells the same keys: one shared string each, not one per claim
        # (a fleet's snapshot is held for the whole run; docs/performance.md).
        spec={intern(k) if type(k) is str else k: v for k, v in spec.items()},
        path=path,
        doc_index=doc.index,
        namespace=str(namespace) if namespace is not None else None,
        annotations=_string_map(name, where, "metadata.annotations", metadata.get("annotations")),
        labels=_string_map(name, where, "metadata.labels", metadata.get("labels")),
        locations={
            intern(format_key_path(key_path)): loc
            for key_path, loc in doc.positions.items()
            if len(key_path) > 1 and key_path[0] == "spec"
        },
        blob=blob,
    )


def _string_map(claim: str, where: str, field_name: str, value: Any) -> Mapping[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ClaimError(claim, f"{where}: {field_name} must be a mapping, not {_yaml_type(value)}")
    return {str(k): _text(v) for k, v in value.items()}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _yaml_type(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a sequence"
    return f"a {type(value).__name__}"


def _printable(name: str) -> str:
    return name.encode("unicode_escape").decode("ascii") if not name.isprintable() else name


def _without_duplicates(found: list[tuple[Claim, int]]) -> tuple[list[Claim], list[FeedbackError]]:
    by_name: dict[str, list[tuple[Claim, int]]] = {}
    for claim, line in found:
        by_name.setdefault(claim.name, []).append((claim, line))
    errors: list[FeedbackError] = []
    for name, entries in by_name.items():
        if len(entries) > 1:
            paths = [c.path for c, _ in entries]
            same_file = len(set(paths)) < len(paths)
            places = [f"{c.path}:{line}" if same_file else c.path for c, line in entries]
            errors.append(DuplicateClaimError(name, places))
    claims = [claim for claim, _ in found if len(by_name[claim.name]) == 1]
    return claims, errors
