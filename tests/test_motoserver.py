from __future__ import annotations

import boto3


def test_moto_server_answers_over_http(aws: str) -> None:
    lam = boto3.client("lambda")
    assert lam.list_functions()["Functions"] == []
    assert aws.startswith("http://127.0.0.1:")
