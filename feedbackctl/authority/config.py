"""The repo's ``.feedbackctl.yaml`` and the policies, read at the authority ref.

Shipped defaults live in the project's ``policies/``. A repo overrides them
with files of the same name under its own policies directory (default
``policies/``, or ``policies:`` in ``.feedbackctl.yaml``), read from git at
the ref like everything else: top-level keys replace the defaults, except
``rules``, ``guardrails`` and ``feedbackSources``, which merge by name, and
``fields``/``metrics``, which merge by key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from feedbackctl.authority.gitrepo import DEFAULT_IDENTITY, GitRepo
from feedbackctl.core.policy import Policy, PolicyError, build_policy
from feedbackctl.resources import data_dir

CONFIG_FILE = ".feedbackctl.yaml"
POLICY_FILES = ("feedback-rules.yaml", "risk.yaml", "sources.yaml")
_MERGE_BY_NAME = ("rules", "guardrails", "feedbackSources")
_MERGE_BY_KEY = ("fields", "metrics")

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
    identity: tuple[str, str] = DEFAULT_IDENTITY  # author of the tool's automated commits
    extra: Mapping[str, Any] = field(default_factory=dict)


def _load_yaml(text: bytes | str, file: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise PolicyError(f"{file}{where}: malformed YAML ({problem}); fix the file") from exc


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
    return p


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
    return RepoConfig(
        claim_paths=_paths(claims.get("paths", [""]), "claims.paths"),
        claim_kinds=tuple(str(k) for k in claims.get("kinds") or ()),
        policies_dir=_folder(str(raw.get("policies", "policies")), "policies") or "policies",
        recommendations_dir=_folder(rec.get("dir"), "recommendations.dir")
        if isinstance(rec, Mapping)
        else None,
        proposal_prefix=str(proposals.get("prefix", "feedback/")),
        max_open_proposals=_int(proposals, "maxOpen", 10),
        max_new_proposals_per_hour=_int(proposals, "maxNewPerHour", 2),
        drift_ignore=tuple(str(x) for x in drift.get("ignore") or ()),
        metrics_source=str(raw["metrics"]) if raw.get("metrics") else None,
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
