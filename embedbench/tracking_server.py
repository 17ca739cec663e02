"""Reaching an MLflow tracking server before a run starts: a server that is down, or refuses the
credentials in MLflow's own environment variables, stops the run with one line before any work. Kept free
of MLflow's imports so the check costs a request, not seconds."""
from __future__ import annotations

import base64
import os
import urllib.error
import urllib.parse
import urllib.request

from embedbench.errors import EmbedbenchError


def served(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def auth_headers() -> dict[str, str]:
    """What MLflow's client sends: a token (MLFLOW_TRACKING_TOKEN), or basic auth (MLFLOW_TRACKING_USERNAME,
    MLFLOW_TRACKING_PASSWORD)."""
    if os.environ.get("MLFLOW_TRACKING_TOKEN"):
        return {"Authorization": f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"}
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    return {}


def check_server(uri: str, experiment: str, timeout: float = 10.0) -> None:
    """The server answers, and lets these credentials read the experiment (which may not exist yet)."""
    if not served(uri):
        return
    query = urllib.parse.urlencode({"experiment_name": experiment})
    request = urllib.request.Request(f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/get-by-name?{query}",
                                     headers=auth_headers())
    try:
        urllib.request.urlopen(request, timeout=timeout).close()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise EmbedbenchError(f"logger.tracking_uri={uri}: the server refused the credentials ({exc.code}); "
                                  "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or "
                                  "MLFLOW_TRACKING_TOKEN)") from None
        if exc.code != 404:  # 404: no such experiment yet, which the run creates
            raise EmbedbenchError(f"logger.tracking_uri={uri}: the server answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EmbedbenchError(f"logger.tracking_uri={uri}: cannot reach the tracking server ({reason})") from None
