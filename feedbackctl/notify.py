"""Telling operators: one JSON event per drift capture, POSTed to a webhook.

The webhook never follows a redirect: a 3xx is reported as the answer, so a
receiver cannot bounce the event (and the cron host's request) to another
address, such as a metadata service. See docs/security.md.

A notification is best effort by design: the capture is already committed
when it is sent, so a failure is reported (to the caller, who prints it and
records it in the event) and never undoes or loses the capture.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from feedbackctl import __version__
from feedbackctl.errors import UsageError

TIMEOUT_SECONDS = 10.0


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx itself


_OPENER = urllib.request.build_opener(_NoRedirects)


def check_webhook_url(url: str) -> str:
    """Refuse anything but an absolute http(s) URL before any work is done."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--notify-webhook '{url}' is not an http:// or https:// URL; pass a full URL")
    return url


def post_event(url: str, event: Mapping[str, Any], timeout: float = TIMEOUT_SECONDS) -> str | None:
    """POST ``event`` as JSON; None when the server accepted it (2xx), else why not, in one line."""
    body = json.dumps(event, default=str).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": f"feedbackctl/{__version__}"},
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as e:
        if 300 <= e.code < 400:
            return f"{url} answered HTTP {e.code} {e.reason} (a redirect; webhooks never follow one)"
        return f"{url} answered HTTP {e.code} {e.reason}"
    except urllib.error.URLError as e:
        return f"cannot reach {url}: {e.reason}"
    except (TimeoutError, OSError) as e:
        return f"cannot reach {url}: {e}"
    if not 200 <= status < 300:
        return f"{url} answered HTTP {status}"
    return None
