"""Stable hash partitions of the claims: ``--shard i/n`` (0 <= i < n).

A fleet too big for one cron job runs n jobs, each taking the claims whose
name hashes to its index (a Kubernetes indexed Job's JOB_COMPLETION_INDEX).
The hash is of the claim name alone, so a claim stays in its shard as the
fleet grows, and the shards cover every claim exactly once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from feedbackctl.errors import UsageError

_FORM = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __contains__(self, claim_name: object) -> bool:
        if not isinstance(claim_name, str):
            return False
        digest = hashlib.sha256(claim_name.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


ALL = Shard(0, 1)


def parse_shard(text: str | None) -> Shard:
    if not text:
        return ALL
    m = _FORM.match(text)
    if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise UsageError(f"--shard '{text}' must be i/n with 0 <= i < n, e.g. 0/4 (a Job's completion index)")
    return Shard(int(m.group(1)), int(m.group(2)))
