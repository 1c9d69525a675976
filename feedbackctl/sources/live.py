"""Live state for drift capture: what the running system says a claim's fields are.

Two sources (docs/contracts.md): a live-state file (YAML or JSON mapping claim
name to ``{field: value}``) and AWS Lambda (``GetFunctionConfiguration`` for
each function a claim maps to, per ``policies/live.yaml``). A problem with one
claim is a value, not an exception, so the other claims are still compared
(docs/contracts.md, "Bad input").
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from feedbackctl.authority.config import _load_yaml
from feedbackctl.authority.yamldoc import MAX_FILE_BYTES, YamlError, load_documents
from feedbackctl.boundedio import InputFileError, read_regular
from feedbackctl.core.models import Claim, Scalar
from feedbackctl.core.policy import PolicyError
from feedbackctl.errors import FeedbackError, UsageError
from feedbackctl.resources import data_dir

LIVE_POLICY_FILE = "live.yaml"


@dataclass
class LiveState:
    """Observed ``{claim: {field: value}}`` plus one-line problems per claim."""

    source: str  # reported as Feedback-Source: live-file, aws-lambda
    observed: dict[str, dict[str, Scalar]] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)

    def add_problem(self, claim: str, problem: str) -> None:
        self.problems.setdefault(claim, []).append(problem)


class LiveSource(Protocol):
    name: str

    def observe(self, claims: Sequence[Claim]) -> LiveState: ...


# --- the live-state file ------------------------------------------------------


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, int | float | str | bool)


def parse_live_document(data: Any, where: str) -> LiveState:
    """Validate ``{claim: {field: scalar}}``; a bad entry is a problem for its claim only."""
    state = LiveState("live-file")
    if data is None:
        return state
    if not isinstance(data, Mapping):
        raise UsageError(f"{where}: expected a mapping of claim name to {{field: value}}; fix the file")
    for raw_name, fields in data.items():
        name = str(raw_name)
        if not isinstance(fields, Mapping):
            state.add_problem(name, f"{where}: {name}: expected a mapping of field to value; fix the file")
            continue
        values: dict[str, Scalar] = {}
        for raw_field, value in fields.items():
            key = str(raw_field).removeprefix("spec.")
            if not key or "." in key or "[" in key:
                state.add_problem(
                    name, f"{where}: {name}.{raw_field}: only top-level spec fields can be observed"
                )
            elif not _is_scalar(value):
                state.add_problem(
                    name, f"{where}: {name}.{raw_field}: expected a single value, not a list or map"
                )
            else:
                values[key] = value
        state.observed[name] = values
    return state


class LiveFile:
    """``--live FILE``: a YAML or JSON snapshot of live values."""

    name = "live-file"

    def __init__(self, path: Path) -> None:
        self.path = path

    def observe(self, claims: Sequence[Claim]) -> LiveState:
        try:
            # Checked before it is read: a regular file within the YAML size limit.
            raw = read_regular(self.path, MAX_FILE_BYTES, follow_symlinks=True)
        except FileNotFoundError:
            raise UsageError(f"--live {self.path}: no such file; pass a live-state file or 'aws'") from None
        except InputFileError as exc:
            raise UsageError(f"--live {self.path}: {exc}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"{self.path}: not valid UTF-8; save the live-state file as UTF-8") from None
        # JSON is YAML; the YAML reader bounds sizes, nesting and aliases.
        try:
            docs = load_documents(str(self.path), text)
        except YamlError as e:
            raise UsageError(e.message) from None
        if len(docs) > 1:
            raise UsageError(f"{self.path}: holds {len(docs)} YAML documents; put all claims in one mapping")
        return parse_live_document(docs[0].data if docs else None, str(self.path))


# --- the live mapping policy (policies/live.yaml) -----------------------------

_PLACEHOLDER = re.compile(r"\{([^{}|]*)(?:\|([^{}]*))?\}")


@dataclass(frozen=True)
class Template:
    """``{spec.resourcePrefix}-api-handler``; ``{spec.region|us-east-1}`` has a default."""

    text: str

    def render(self, claim: Claim) -> str:
        def one(match: re.Match[str]) -> str:
            path, default = match.group(1).strip(), match.group(2)
            value = _claim_value(claim, path)
            if value is None or value == "":
                if default is None:
                    raise FeedbackError(f"{path} is not set, and the live mapping '{self.text}' needs it")
                return default.strip()
            return str(value)

        return _PLACEHOLDER.sub(one, self.text)


def _claim_value(claim: Claim, path: str) -> Scalar:
    if path in ("metadata.name", "name"):
        return claim.name
    if path == "metadata.namespace":
        return claim.namespace
    key = path.removeprefix("spec.")
    value = claim.spec.get(key)
    return value if _is_scalar(value) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class LambdaMapping:
    """How one claim kind maps to Lambda functions and their configuration."""

    kind: str
    functions: tuple[Template, ...]
    fields: Mapping[str, str]  # spec field -> GetFunctionConfiguration attribute
    region: Template | None = None


@dataclass(frozen=True)
class LivePolicy:
    lambdas: tuple[LambdaMapping, ...] = ()

    def for_kind(self, kind: str) -> LambdaMapping | None:
        return next((m for m in self.lambdas if m.kind == kind), None)


def _template(raw: Any, where: str, key: str) -> Template:
    if not isinstance(raw, str) or not raw.strip():
        raise PolicyError(f"{where}: {key}: expected a name template like '{{spec.resourcePrefix}}-api'")
    if raw.count("{") != raw.count("}") or any(not m.group(1).strip() for m in _PLACEHOLDER.finditer(raw)):
        raise PolicyError(f"{where}: {key}: '{raw}' has an unbalanced or empty {{placeholder}}; fix it")
    return Template(raw)


def parse_live_policy(doc: Any, where: str) -> LivePolicy:
    if doc is None:
        return LivePolicy()
    if not isinstance(doc, Mapping):
        raise PolicyError(f"{where}: expected a mapping at the top; fix the file")
    entries = doc.get("lambda") or []
    if not isinstance(entries, list):
        raise PolicyError(f"{where}: lambda: expected a list of claim kinds; fix the file")
    mappings: list[LambdaMapping] = []
    for i, raw in enumerate(entries):
        key = f"lambda[{i}]"
        if not isinstance(raw, Mapping) or not isinstance(raw.get("kind"), str):
            raise PolicyError(f"{where}: {key}: expected kind, functions and fields; fix the file")
        functions = raw.get("functions")
        if not isinstance(functions, list) or not functions:
            raise PolicyError(f"{where}: {key}.functions: expected a non-empty list of name templates")
        fields = raw.get("fields")
        if (
            not isinstance(fields, Mapping)
            or not fields
            or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in fields.items())
        ):
            raise PolicyError(
                f"{where}: {key}.fields: expected spec field -> attribute, e.g. lambdaMemory: MemorySize"
            )
        region = raw.get("region")
        mappings.append(
            LambdaMapping(
                kind=raw["kind"],
                functions=tuple(
                    _template(f, where, f"{key}.functions[{j}]") for j, f in enumerate(functions)
                ),
                fields={k.removeprefix("spec."): v for k, v in fields.items()},
                region=_template(region, where, f"{key}.region") if region is not None else None,
            )
        )
    return LivePolicy(tuple(mappings))


def load_live_policy(override: tuple[str, bytes] | None) -> LivePolicy:
    """The shipped ``policies/live.yaml``; a repo's own file replaces entries by kind."""
    default_path = data_dir("policies") / LIVE_POLICY_FILE
    shipped = parse_live_policy(
        _load_yaml(default_path.read_bytes(), f"policies/{LIVE_POLICY_FILE}"), f"policies/{LIVE_POLICY_FILE}"
    )
    if override is None:
        return shipped
    where, text = override
    mine = parse_live_policy(_load_yaml(text, where), where)
    kinds = {m.kind for m in mine.lambdas}
    return LivePolicy(mine.lambdas + tuple(m for m in shipped.lambdas if m.kind not in kinds))


# --- AWS Lambda -------------------------------------------------------------

_THROTTLED = frozenset(
    {"ThrottlingException", "TooManyRequestsException", "Throttling", "RequestLimitExceeded"}
)
_DENIED = frozenset({"AccessDeniedException", "AccessDenied", "UnrecognizedClientException"})
# botocore's standard and legacy retries already back off on throttling; these
# only bound how long an unreachable endpoint can hold a cron run.
_CONNECT_TIMEOUT = 5
_READ_TIMEOUT = 20
WORKERS = 8


def _botocore_exceptions() -> Any:
    # Imported on demand (and untyped): a file-based drift run never pays for boto3.
    return importlib.import_module("botocore.exceptions")


@dataclass(frozen=True)
class _Call:
    region: str | None
    function: str


@dataclass
class _Answer:
    config: Mapping[str, Any] | None = None
    problem: str | None = None
    unreachable: bool = False


class LambdaLive:
    """``--live aws``: Lambda ``GetFunctionConfiguration`` through the standard credential chain.

    ``AWS_ENDPOINT_URL`` (and ``AWS_ENDPOINT_URL_LAMBDA``) are honoured by
    botocore itself; retries follow ``AWS_RETRY_MODE``/``AWS_MAX_ATTEMPTS``.
    """

    name = "aws-lambda"

    def __init__(self, policy: LivePolicy, workers: int = WORKERS) -> None:
        self.policy = policy
        self.workers = workers
        self._clients: dict[str | None, Any] = {}

    def _client(self, session: Any, region: str | None) -> Any:
        if region not in self._clients:
            config = importlib.import_module("botocore.config").Config(
                connect_timeout=_CONNECT_TIMEOUT, read_timeout=_READ_TIMEOUT
            )
            self._clients[region] = session.client("lambda", region_name=region, config=config)
        return self._clients[region]

    def _get(self, session: Any, call: _Call) -> _Answer:
        exc = _botocore_exceptions()
        where = f"{call.function}" + (f" ({call.region})" if call.region else "")
        try:
            reply = self._client(session, call.region).get_function_configuration(FunctionName=call.function)
        except exc.NoCredentialsError:
            raise UsageError(
                "no AWS credentials found; configure the standard chain "
                "(AWS_PROFILE, AWS_ACCESS_KEY_ID, ~/.aws, or an instance role)"
            ) from None
        except exc.NoRegionError:
            raise UsageError(
                "no AWS region: set AWS_REGION, or give the claims spec.region (see policies/live.yaml)"
            ) from None
        except exc.ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            message = str(e.response.get("Error", {}).get("Message", "")).strip()
            if code == "ResourceNotFoundException":
                text = (
                    f"Lambda function {where} not found; check spec.resourcePrefix "
                    "or the function names in policies/live.yaml"
                )
            elif code in _THROTTLED:
                text = f"AWS throttled GetFunctionConfiguration for {where} after retries; rerun later"
            elif code in _DENIED:
                text = f"access denied reading {where}: allow lambda:GetFunctionConfiguration ({code})"
            else:
                text = f"GetFunctionConfiguration for {where} failed: {code}: {message}"
            return _Answer(problem=text)
        except (exc.EndpointConnectionError, exc.ConnectTimeoutError) as e:
            return _Answer(
                problem=f"cannot reach the Lambda endpoint for {where} ({e}); check AWS_ENDPOINT_URL "
                "or the network",
                unreachable=True,
            )
        except exc.BotoCoreError as e:
            return _Answer(problem=f"GetFunctionConfiguration for {where} failed: {e}")
        return _Answer(config=reply)

    def observe(self, claims: Sequence[Claim]) -> LiveState:
        state = LiveState(self.name)
        plans: list[tuple[Claim, LambdaMapping, list[_Call]]] = []
        for claim in claims:
            mapping = self.policy.for_kind(claim.kind)
            if mapping is None:
                continue  # kinds without a mapping have no live state to compare
            try:
                region = mapping.region.render(claim) if mapping.region else None
                calls = [_Call(region or None, t.render(claim)) for t in mapping.functions]
            except FeedbackError as e:
                state.add_problem(claim.name, f"{claim.name}: {e}")
                continue
            plans.append((claim, mapping, calls))
        unique = list(dict.fromkeys(call for _, _, calls in plans for call in calls))
        answers = self._ask(unique)
        for claim, mapping, calls in plans:
            self._merge(state, claim, mapping, [(c, answers[c]) for c in calls])
        return state

    def _ask(self, calls: Sequence[_Call]) -> dict[_Call, _Answer]:
        if not calls:
            return {}
        boto3 = importlib.import_module("boto3")
        session = boto3.session.Session()
        answers: dict[_Call, _Answer] = {}
        # One call first: an unreachable endpoint is reported once, not waited out per function.
        first = self._get(session, calls[0])
        answers[calls[0]] = first
        rest = list(calls[1:])
        if first.unreachable:
            for call in rest:
                answers[call] = _Answer(problem=f"not read: {first.problem}", unreachable=True)
            return answers

        def get(call: _Call) -> _Answer:
            return self._get(session, call)

        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            for call, answer in zip(rest, pool.map(get, rest), strict=True):
                answers[call] = answer
        return answers

    def _merge(
        self, state: LiveState, claim: Claim, mapping: LambdaMapping, answers: list[tuple[_Call, _Answer]]
    ) -> None:
        failed = [a.problem for _, a in answers if a.problem]
        if failed:
            # Without every function the claim composes, the live value is not known.
            for problem in dict.fromkeys(failed):
                state.add_problem(claim.name, f"{claim.name}: {problem}")
            return
        values: dict[str, Scalar] = {}
        for spec_field, attribute in mapping.fields.items():
            seen = {call.function: a.config.get(attribute) if a.config else None for call, a in answers}
            distinct = set(map(repr, seen.values()))
            if len(distinct) > 1:
                listed = ", ".join(f"{fn} has {attribute} {v}" for fn, v in seen.items())
                state.add_problem(
                    claim.name,
                    f"{claim.name}: the functions disagree on spec.{spec_field} ({listed}); "
                    "nothing captured for it until they agree",
                )
                continue
            value = next(iter(seen.values()))
            if value is None or not _is_scalar(value):
                state.add_problem(
                    claim.name,
                    f"{claim.name}: GetFunctionConfiguration has no single value {attribute} for "
                    f"spec.{spec_field}; fix the attribute name in policies/{LIVE_POLICY_FILE}",
                )
                continue
            values[spec_field] = value
        state.observed[claim.name] = values


# --- opening a source ---------------------------------------------------------

LiveFactory = Callable[[str, LivePolicy], LiveSource]

_factories: dict[str, LiveFactory] = {"aws": lambda _spec, policy: LambdaLive(policy)}


def register(kind: str, factory: LiveFactory) -> None:
    """Make ``--live KIND`` open a source built by ``factory(spec, live_policy)``."""
    _factories[kind] = factory


def open_live(spec: str, policy: LivePolicy) -> LiveSource:
    """``aws`` (or another registered kind), else a live-state file path."""
    if not spec.strip():
        raise UsageError("--live is empty; pass a live-state file or 'aws'")
    factory = _factories.get(spec)
    if factory is not None:
        return factory(spec, policy)
    return LiveFile(Path(spec).expanduser())


def needs_policy(spec: str) -> bool:
    """Whether the source reads the live mapping (files do not)."""
    return spec in _factories
