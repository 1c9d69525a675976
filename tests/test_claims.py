"""Claims out of YAML files: positions, skipped kinds, and bad input that hides nothing else."""

from __future__ import annotations

import pytest

from feedbackctl.authority.claims import (
    ClaimFile,
    ClaimSet,
    DuplicateClaimError,
    parse_claims,
    validate_claim_name,
)
from feedbackctl.errors import ClaimError, FeedbackError
from tests import kustomizefix
from tests.conftest import RepoFactory
from tests.gitutil import git_out

CORPUS = kustomizefix.CORPUS


def claim_yaml(name: str, memory: int = 256, kind: str = "ServerlessEventAppClaim") -> str:
    return (
        "apiVersion: messagewall.demo/v1alpha1\n"
        f"kind: {kind}\n"
        "metadata:\n"
        f"  name: {name}\n"
        "spec:\n"
        f"  lambdaMemory: {memory}  # tuned\n"
    )


def files(**texts: str | bytes) -> list[ClaimFile]:
    """``files(a="...")`` -> [("claims/a.yaml", "blob-a", b"...")]."""
    out: list[ClaimFile] = []
    for stem, text in texts.items():
        content = text.encode() if isinstance(text, str) else text
        out.append((f"claims/{stem}.yaml", f"blob-{stem}", content))
    return out


def messages(result: ClaimSet) -> list[str]:
    return [str(e) for e in result.errors]


def names(result: ClaimSet) -> list[str]:
    return [c.name for c in result.claims]


# --- the corpus, read from a real git repository -----------------------------------


def test_corpus_claims_from_a_git_repo(repo_factory: RepoFactory) -> None:
    sources = {
        str(p.relative_to(CORPUS)): p.read_text(encoding="utf-8")
        for p in sorted(CORPUS.rglob("*.yaml"))
        if p.relative_to(CORPUS).parts[0] in ("examples", "infra", "platform")
    }
    work, _ = repo_factory(sources, bare_origin=False)
    listing = git_out(work, "ls-tree", "-r", "HEAD").splitlines()
    blobs = {line.split("\t")[1]: line.split()[2] for line in listing}
    inputs = [(path, blob, (work / path).read_bytes()) for path, blob in sorted(blobs.items())]
    assert all(git_out(work, "hash-object", path) == blob for path, blob, _ in inputs)

    result = parse_claims(inputs)

    assert result.errors == []
    by_name = {c.name: c for c in result.claims}
    assert sorted(by_name) == ["messagewall", "messagewall-dev", "messagewall-prod"]
    prod = by_name["messagewall-prod"]
    assert prod.path == "examples/claims/messagewall-prod.yaml"
    assert prod.blob == blobs[prod.path]
    assert (prod.kind, prod.api_version, prod.namespace) == (
        "ServerlessEventAppClaim",
        "messagewall.demo/v1alpha1",
        "default",
    )
    assert prod.is_production and prod.value("lambdaMemory") == 256
    assert prod.annotations["confighub.io/precious"] == "true"
    assert sorted(prod.locations) == sorted(f"spec.{k}" for k in prod.spec)
    text = (CORPUS / prod.path).read_text(encoding="utf-8")
    for field, loc in prod.locations.items():
        assert text[loc.start : loc.end].strip('"') == str(prod.spec[field.removeprefix("spec.")])
        assert (loc.path, loc.doc_index) == (prod.path, 0)
    assert prod.locations["spec.lambdaMemory"].line == 46


# --- which documents are claims -----------------------------------------------------


def test_other_kinds_and_kustomizations_are_skipped_silently() -> None:
    recommendation = (
        "apiVersion: feedback.demo/v1\nkind: ConfigurationRecommendation\n"
        "metadata: {name: rec}\nspec: {target: app}\n"
    )
    inputs = [
        *files(
            mixed=f"# header\n---\n{recommendation}---\n{claim_yaml('app')}",
            proposal="kind: ConfigurationProposal\nmetadata: {name: p}\nspec: [1]\n",
            bare="just: a mapping\n",
            listdoc="- a\n- b\n",
        ),
        ("claims/kustomization.yaml", "k", b"kind: FooClaim\nthis is: [not parsed\n"),
        ("claims/helm/templates/app.yaml", "h", b"{{- if .Values.x }}\nkey: {{ .Values.y }}\n"),
    ]
    result = parse_claims(inputs)
    assert result.errors == []
    assert names(result) == ["app"]
    assert result.claims[0].doc_index == 1
    assert result.claims[0].locations["spec.lambdaMemory"].doc_index == 1


def test_configured_kinds_replace_the_claim_suffix_rule() -> None:
    inputs = files(
        a=claim_yaml("a", kind="ServerlessEventApp"),
        b=claim_yaml("b", kind="OtherClaim"),
    )
    assert names(parse_claims(inputs, kinds={"ServerlessEventApp"})) == ["a"]
    assert names(parse_claims(inputs)) == ["b"]


def test_nested_and_sequence_spec_values_get_locations() -> None:
    text = (
        "kind: AppClaim\nmetadata:\n  name: app\n  labels: {tier: 1, on-call: true}\nspec:\n"
        "  autoTune:\n    memoryBounds:\n      min: 128\n      max: 1024  # ceiling\n"
        "  regions: [us-east-1, 'eu-west-1']\n  empty:\n"
    )
    claim = parse_claims(files(app=text)).claims[0]
    spans = {k: text[v.start : v.end] for k, v in claim.locations.items()}
    assert spans == {
        "spec.autoTune.memoryBounds.min": "128",
        "spec.autoTune.memoryBounds.max": "1024",
        "spec.regions[0]": "us-east-1",
        "spec.regions[1]": "'eu-west-1'",
        "spec.empty": "",
    }
    assert claim.labels == {"tier": "1", "on-call": "true"}


def test_byte_order_mark_and_crlf_claims_parse_with_exact_locations() -> None:
    text = "\ufeff" + claim_yaml("app").replace("\n", "\r\n")
    claim = parse_claims(files(app=text.encode("utf-8"))).claims[0]
    loc = claim.locations["spec.lambdaMemory"]
    assert text[loc.start : loc.end] == "256"
    assert loc.line == 6


# --- bad input: one clear line each, the other claims still parse ---------------------

BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            "kind: AppClaim\nmetadata:\n  name: bad\nspec: {lambdaMemory: 1: 2}\n",
            "claims/bad.yaml:4: malformed YAML (did not find expected ',' or '}'); fix the file",
            id="malformed",
        ),
        pytest.param(
            "kind: AppClaim\nmetadata: name: bad\n",
            "claims/bad.yaml:2: malformed YAML (mapping values are not allowed in this context); "
            "fix the file",
            id="malformed-mapping",
        ),
        pytest.param(
            "kind: AppClaim\n" + BOMB,
            "claims/bad.yaml:2: YAML aliases expand too much (possible alias bomb); remove the anchors",
            id="billion-laughs",
        ),
        pytest.param(
            "kind: AppClaim\nmetadata: {name: bad}\n"
            "spec: !!python/object/apply:os.system ['touch /tmp/pwned']\n",
            "claims/bad.yaml:3: YAML tag '!!python/object/apply:os.system' is not allowed (only "
            "plain data: no Python objects or custom tags); remove the tag",
            id="python-tag",
        ),
        pytest.param(
            "kind: AppClaim\nspec:\n  lambdaMemory: 1\n",
            "claims/bad.yaml:1: AppClaim document has no metadata.name; add one",
            id="missing-name",
        ),
        pytest.param(
            "kind: AppClaim\nmetadata:\n  name: 42\nspec: {}\n",
            "claims/bad.yaml:1: AppClaim metadata.name must be a string, not a int; quote it",
            id="numeric-name",
        ),
        pytest.param(
            "kind: AppClaim\nmetadata:\n  name: bad\nspec: [1, 2]\n",
            "bad: claims/bad.yaml:1: spec must be a mapping, not a sequence; fix spec",
            id="spec-sequence",
        ),
        pytest.param(
            "kind: AppClaim\nmetadata:\n  name: bad\n",
            "bad: claims/bad.yaml:1: AppClaim document has no spec; add a spec mapping",
            id="missing-spec",
        ),
        pytest.param(
            "kind: AppClaim\nmetadata:\n  name: bad\n  annotations: [x]\nspec: {}\n",
            "bad: claims/bad.yaml:1: metadata.annotations must be a mapping, not a sequence",
            id="annotations-sequence",
        ),
        pytest.param(
            b"kind: AppClaim\nmetadata:\n  name: caf\xe9\nspec: {}\n",
            "claims/bad.yaml:3: not valid UTF-8 (byte 0xe9 at offset 36); save the file as UTF-8",
            id="invalid-utf8",
        ),
        pytest.param(
            "kind: AppClaim\nmetadata:\n  name: ../../etc\nspec: {}\n",
            "../../etc: claims/bad.yaml:1: invalid claim name: it contains '..'; rename it "
            "(lowercase letters, digits, '-' and '.')",
            id="traversal-name",
        ),
        pytest.param(
            'kind: AppClaim\nmetadata:\n  name: "a\\tb"\nspec: {}\n',
            "a\\tb: claims/bad.yaml:1: invalid claim name: it contains a control character; "
            "rename it (lowercase letters, digits, '-' and '.')",
            id="control-name",
        ),
        pytest.param(
            b"kind: AppClaim\n" + b"#" * (10 * 1024 * 1024 + 1),
            "claims/bad.yaml: file is 10.0 MB, over the 10 MB limit for YAML; split it or move "
            "it out of the claims path",
            id="too-big",
        ),
    ],
)
def test_bad_input_is_one_clear_error_and_the_rest_still_parse(content: str | bytes, message: str) -> None:
    inputs = files(good=claim_yaml("good"), bad=content, other=claim_yaml("other", 512))
    result = parse_claims(inputs)
    assert messages(result) == [message]
    assert all(isinstance(e, FeedbackError) for e in result.errors)
    assert names(result) == ["good", "other"]


def test_a_bad_document_does_not_hide_a_good_one_in_the_same_file() -> None:
    text = "kind: AppClaim\nmetadata: {}\nspec: {}\n---\n" + claim_yaml("fine")
    result = parse_claims(files(multi=text))
    assert messages(result) == ["claims/multi.yaml:1: AppClaim document has no metadata.name; add one"]
    assert names(result) == ["fine"]


def test_duplicate_claim_names_reject_both_and_name_both_files() -> None:
    inputs = files(a=claim_yaml("x"), b=claim_yaml("x", 512), c=claim_yaml("y"))
    result = parse_claims(inputs)
    assert messages(result) == ["claim 'x' is defined twice: claims/a.yaml and claims/b.yaml; rename one"]
    assert isinstance(result.errors[0], DuplicateClaimError)
    assert isinstance(result.errors[0], ClaimError) and result.errors[0].claim == "x"
    assert names(result) == ["y"]


def test_duplicates_in_one_file_name_the_lines() -> None:
    text = claim_yaml("x") + "---\n" + claim_yaml("x") + "---\n" + claim_yaml("x")
    result = parse_claims(files(a=text, b=claim_yaml("z")))
    assert messages(result) == [
        "claim 'x' is defined 3 times: claims/a.yaml:1, claims/a.yaml:8 and claims/a.yaml:15; "
        "rename all but one"
    ]
    assert names(result) == ["z"]


# --- claim names --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["messagewall-prod", "a", "app.v2", "0-1", "x" * 253, "prod-east.messagewall"]
)
def test_good_claim_names(name: str) -> None:
    validate_claim_name(name)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "it is empty"),
        ("a..b", "it contains '..'"),
        ("a~1", "it contains '~'"),
        ("a^b", "it contains '^'"),
        ("a:b", "it contains ':'"),
        ("a?", "it contains '?'"),
        ("a*", "it contains '*'"),
        ("a[0]", "it contains '['"),
        ("a\\b", "it contains a backslash"),
        ("a b", "it contains a space"),
        ("a@{1}", "it contains '@{'"),
        ("team/app", "it contains '/' (a path separator)"),
        ("-app", "it starts with '-'"),
        (".app", "it starts with '.'"),
        ("app.lock", "it ends with '.lock', which git refuses"),
        ("app\x7f", "it contains a control character"),
        ("caf\u00e9", "it contains non-ASCII characters"),
        ("App", "it contains uppercase letters"),
        ("app_1", "it is not a Kubernetes (DNS-1123) name"),
        ("app-", "it is not a Kubernetes (DNS-1123) name"),
        ("x" * 254, "it is longer than 253 characters"),
    ],
)
def test_bad_claim_names_name_the_claim_and_the_problem(name: str, problem: str) -> None:
    with pytest.raises(ClaimError) as caught:
        validate_claim_name(name)
    shown = name.encode("unicode_escape").decode() if not name.isprintable() else name
    assert str(caught.value) == (
        f"{shown}: invalid claim name: {problem}; rename it (lowercase letters, digits, '-' and '.')"
    )
