"""The run id every automated commit carries as ``Feedback-Run`` (docs/autotune.md, sharding).

The per-run change limit is for a whole cron slot, and the shards of one slot
are separate processes: they share an id only if the scheduler hands them
one. A cron wrapper or a Kubernetes Job sets ``FEEDBACKCTL_RUN_ID`` (the Job's
name, the slot's timestamp); without it every invocation is a run of its own.
``audit verify`` groups the per-run checks by this id (docs/audit.md).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping

from feedbackctl.errors import UsageError

RUN_ID_ENV = "FEEDBACKCTL_RUN_ID"
MAX_LENGTH = 64
_FORM = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_LENGTH}}}")


def run_id(environ: Mapping[str, str] | None = None) -> str:
    """The slot's id from the environment, else a fresh one for this invocation alone."""
    raw = (os.environ if environ is None else environ).get(RUN_ID_ENV, "")
    if not raw:
        return uuid.uuid4().hex
    if not _FORM.fullmatch(raw):
        shown = raw if len(raw) <= MAX_LENGTH else raw[:MAX_LENGTH] + "..."
        raise UsageError(
            f"{RUN_ID_ENV}={shown!r} is not a run id: use 1-{MAX_LENGTH} letters, digits, '.', '_' "
            "or '-' (one id per cron slot, e.g. the Job's name), or unset it"
        )
    return raw
