"""Claim identity across one commit: which claim after it is which claim before it.

A claim is its kind and ``metadata.name``, wherever its document lives: a
file move, a directory reorganisation, consolidating documents into one
file or splitting one file into several keep the identity. A commit that
removes claim X and adds claim Y of the same kind with identical spec (Y
did not exist before, X does not exist after) renamed X to Y: Y is the same
claim, and inherits X's history. Only an unambiguous match is a rename (one
removed claim with that spec, one added claim with it); anything else is a
new claim. docs/history.md ("Claim identity") states the rule for users.
Pure: plain values in, plain values out.
"""

from __future__ import annotations

from collections.abc import Mapping

Identity = tuple[str, str]  # (kind, metadata.name)


def predecessors(
    before: Mapping[Identity, object], after: Mapping[Identity, object]
) -> dict[Identity, Identity]:
    """Each claim of ``after`` that existed before the commit -> its identity in ``before``.

    ``before`` and ``after`` map identity -> spec, for the claims a commit's
    changed files held before and after it. A claim in both is itself
    (moved or not); an added one matches a removed one by kind and spec.
    """
    out = {i: i for i in after if i in before}
    removed = [i for i in before if i not in after]
    added = [i for i in after if i not in before]
    for new in added:
        was = [old for old in removed if old[0] == new[0] and before[old] == after[new]]
        if len(was) != 1:
            continue
        rivals = [other for other in added if other[0] == new[0] and after[other] == before[was[0]]]
        if len(rivals) == 1:
            out[new] = was[0]
    return out
