"""The repo's ``.feedbackctl.yaml`` and the policies, read at the authority ref.

Shipped defaults live in the project's ``policies/``. A repo overrides them
with files of the same name under its own policies directory (default
``policies/``, or ``policies:`` in ``.feedbackctl.yaml``), read from git at
the ref like everything else: top-level keys replace the defaults, except
``rules``, ``guardrails`` and ``feedbackSources``, which merge by name, and
``fields``/``metrics``, which merge by key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feedbackctl.authority.gitrepo import DEFAULT_IDENTITY, GitRepo, branch_name_problem
from feedbackctl.authority.paths import path_problem
from feedbackctl.authority.yamldoc import YamlError, load_data
from feedbackctl.core.policy import Policy, PolicyError
from feedbackctl.core.policy_parse import build_policy
from feedbackctl.core.validation import Validation, ValidationConfigError, parse_validation
from feedbackctl.errors import UsageError
from feedbackctl.resources import data_dir
from feedbackctl.sources.base import is_source_kind

CONFIG_FILE = ".feedbackctl.yaml"
POLICY_FILES = ("feedback-rules.yaml", "risk.yaml", "sources.yaml")
_MERGE_BY_NAME = ("rules", "guardrails", "feedbackSources")
_MERGE_BY_KEY = ("fields", "metrics")

@dataclass(frozen=True)
class RepoConfig:
    """Settings from ``.feedbackctl.yaml`` (all optional)."""

    claim_paths: tuple[str, ...] = ("",)
    claim_kinds: tuple[str, ...] = ()  # empty: any kind ending in "Claim"
    policies_dir: str = "policies"
    recommendations_dir: str | None = None  # None: beside each claim
    proposal_prefix: str = "feedback/"
    max_open_proposals: int = 10
    max_new_proposals_per_hour: int = 2
    drift_ignore: tuple[str, ...] = ()
    metrics_source: str | None = None
    validation: Validation | None = None  # promotion stages (docs/validation.md)
    identity: tuple[str, str] = DEFAULT_IDENTITY  # author of the tool's automated commits
    extra: Mapping[str, Any] = field(default_factory=dict)


def _load_yaml(text: bytes | str, file: str) -> Any:
    try:
        return load_data(file, text)
    except YamlError as exc:
        raise PolicyError(str(exc)) from None


def _inside(raw: str, key: str) -> str:
    """A repo-relative folder ('' for the root); one that leaves the repository is refused.

    Only a leading ``./`` is dropped: ``lstrip("./")`` would turn ``../x`` into
    ``x`` and silently read the wrong folder.
    """
    p = raw.strip()
    while p.startswith("./"):
        p = p[2:]
    p = "" if p == "." else p.rstrip("/")
    if p.startswith("/") or ".." in p.split("/"):
        raise PolicyError(f"{CONFIG_FILE}: {key}: '{raw}' leaves the repository; use a path inside it")
    problem = path_problem(p) if p else None
    if problem:
        raise PolicyError(f"{CONFIG_FILE}: {key}: '{raw}' {problem}; use a plain path inside the repo")
    return p


def _metrics(raw: Any) -> str | None:
    """A source kind as written, or a fixtures folder checked like every other path setting."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise PolicyError(f"{CONFIG_FILE}: metrics: expected a source kind or a folder path; fix the file")
    if is_source_kind(raw.strip()):
        return raw.strip()
    folder = _inside(raw, "metrics")
    if not folder:
        raise PolicyError(f"{CONFIG_FILE}: metrics: '{raw}' is the repository itself; name its folder")
    return folder


def metrics_location(config: RepoConfig, repo: GitRepo) -> str | None:
    """``metrics:`` as a source spec: a folder resolves inside the repo's checkout, never elsewhere."""
    spec = config.metrics_source
    if spec is None or is_source_kind(spec):
        return spec
    if repo.work_tree is None:
        raise UsageError(
            f"{CONFIG_FILE}: metrics: '{spec}' is a folder, and {repo.display} has no checkout; "
            "pass --metrics DIR"
        )
    root = os.path.realpath(repo.work_tree)
    target = os.path.realpath(os.path.join(root, spec))
    if os.path.commonpath([root, target]) != root:
        raise UsageError(
            f"{CONFIG_FILE}: metrics: '{spec}' resolves outside {repo.work_tree} (a symlink?); "
            "use a folder inside the repo or pass --metrics DIR"
        )
    return str(Path(target))


def _paths(raw: Any, key: str) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise PolicyError(f"{CONFIG_FILE}: {key}: expected a list of paths; fix the file")
    out = []
    for raw_path in raw:
        p = _inside(raw_path, key)
        out.append(p + "/" if p else "")
    return tuple(out)


def _folder(raw: Any, key: str) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise PolicyError(f"{CONFIG_FILE}: {key}: expected a folder path; fix the file")
    return _inside(raw, key) or None


def _prefix(raw: Any) -> str:
    problem = (
        "is not a string"
        if not isinstance(raw, str)
        else "does not end with '/'"
        if not raw.endswith("/")
        else branch_name_problem(raw + "x")
    )
    if problem:
        raise PolicyError(
            f"{CONFIG_FILE}: proposals.prefix '{raw}' cannot start a git branch name; use letters, "
            f"digits, '-', '.' and '/' (default feedback/) — it {problem}"
        )
    return str(raw)


_IDENTITY = re.compile(r"\s*([^<>\n]*?)\s*<([^<>\s]+)>\s*")


def _identity(raw: Any) -> tuple[str, str]:
    """``identity: "Name <email>"`` (or ``{name, email}``): who automated commits are by."""
    if raw is None:
        return DEFAULT_IDENTITY
    if isinstance(raw, Mapping):
        name, email = raw.get("name"), raw.get("email")
        raw = f"{name} <{email}>" if isinstance(name, str) and isinstance(email, str) else None
    m = _IDENTITY.fullmatch(raw) if isinstance(raw, str) else None
    if m is None or not m.group(1):
        raise PolicyError(
            f"{CONFIG_FILE}: identity: expected 'Name <email>' (e.g. "
            f"'{DEFAULT_IDENTITY[0]} <{DEFAULT_IDENTITY[1]}>'), got {raw!r}; fix the file"
        )
    return m.group(1), m.group(2)


def parse_config(raw: Any) -> RepoConfig:
    if raw is None:
        return RepoConfig()
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{CONFIG_FILE}: expected a mapping at the top; fix the file")
    claims = raw.get("claims") or {}
    proposals = raw.get("proposals") or {}
    drift = raw.get("drift") or {}
    if not all(isinstance(x, Mapping) for x in (claims, proposals, drift)):
        raise PolicyError(f"{CONFIG_FILE}: claims, proposals and drift must be mappings; fix the file")

    def _int(m: Mapping[str, Any], key: str, default: int) -> int:
        v = m.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise PolicyError(f"{CONFIG_FILE}: {key}: expected a whole number >= 0, got {v!r}")
        return v

    rec = raw.get("recommendations") or {}
    if not isinstance(rec, Mapping):
        raise PolicyError(f"{CONFIG_FILE}: recommendations must be a mapping; fix the file")
    _folder(proposals.get("dir"), "proposals.dir")  # read by the proposals pattern; checked here
    try:
        validation = parse_validation(raw.get("validation"))
    except ValidationConfigError as e:
        raise PolicyError(f"{CONFIG_FILE}: {e}; fix the file") from e
    return RepoConfig(
        claim_paths=_paths(claims.get("paths", [""]), "claims.paths"),
        claim_kinds=tuple(str(k) for k in claims.get("kinds") or ()),
        policies_dir=_folder(str(raw.get("policies", "policies")), "policies") or "policies",
        recommendations_dir=_folder(rec.get("dir"), "recommendations.dir")
        if isinstance(rec, Mapping)
        else None,
        proposal_prefix=_prefix(proposals.get("prefix", "feedback/")),
        max_open_proposals=_int(proposals, "maxOpen", 10),
        max_new_proposals_per_hour=_int(proposals, "maxNewPerHour", 2),
        drift_ignore=tuple(str(x) for x in drift.get("ignore") or ()),
        metrics_source=_metrics(raw.get("metrics")),
        validation=validation,
        identity=_identity(raw.get("identity")),
        extra=raw,
    )


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if key in _MERGE_BY_NAME and isinstance(value, list) and isinstance(base.get(key), list):
            merged = {item.get("name"): item for item in base[key] if isinstance(item, Mapping)}
            for item in value:
                if isinstance(item, Mapping):
                    merged[item.get("name")] = item
            out[key] = list(merged.values())
        elif key in _MERGE_BY_KEY and isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            out[key] = {**base[key], **value}
        else:
            out[key] = value
    return out


def load_policy_docs(overrides: Mapping[str, tuple[str, bytes]]) -> Policy:
    """Build the policy from the shipped defaults plus ``{file: (repo path, text)}``."""
    docs: dict[str, tuple[dict[str, Any], str]] = {}
    defaults = data_dir("policies")
    for name in POLICY_FILES:
        default_path = defaults / name
        doc = _load_yaml(default_path.read_bytes(), f"policies/{name}") or {}
        where = f"policies/{name}"
        if name in overrides:
            where, text = overrides[name]
            override = _load_yaml(text, where) or {}
            if not isinstance(override, Mapping):
                raise PolicyError(f"{where}: expected a mapping at the top; fix the file")
            doc = _merge(doc, override)
        docs[name] = (doc, where)
    rules, risk, sources = (docs[n] for n in POLICY_FILES)
    return build_policy(rules[0], rules[1], risk[0], risk[1], sources[0], sources[1])


@dataclass(frozen=True)
class Settings:
    config: RepoConfig
    policy: Policy


def load_settings(repo: GitRepo, commit: str) -> Settings:
    """Read ``.feedbackctl.yaml`` and the policy overrides at ``commit``."""
    raw = repo.read_file(commit, CONFIG_FILE)
    config = parse_config(_load_yaml(raw, CONFIG_FILE) if raw is not None else None)
    repo.bot_identity = config.identity  # the commits this run writes for itself
    overrides: dict[str, tuple[str, bytes]] = {}
    for name in POLICY_FILES:
        path = f"{config.policies_dir}/{name}"
        text = repo.read_file(commit, path)
        if text is not None:
            overrides[name] = (path, text)
    return Settings(config, load_policy_docs(overrides))
