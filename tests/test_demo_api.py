"""The /compare API through gradio_client: every registry method at its defaults answers on the
loaded model, and inputs of the wrong type come back as one-line messages."""
from __future__ import annotations

import pytest

from demo_server import shared_server

QUESTION = "what colour is the circle ?"


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    return shared_server(request, tmp_path_factory)


def test_compare_api_runs_every_registry_method_at_its_defaults(server):
    from gradio_client import Client
    from demo.controls import selectable_methods
    names = [m.name for m in selectable_methods()]
    client = Client(server.url, verbose=False)
    got = client.predict("sample-2", QUESTION, names, 0.25, 2, 2, 1, api_name="/compare")
    rows = got["rows"]
    assert [r["method"] for r in rows] == ["none", *names]
    assert all(isinstance(r["answer"], str) and r["answer"].strip() for r in rows), \
        [(r["method"], r["answer"]) for r in rows if not r["answer"].strip()]
    assert all(r["kept_tokens"] <= r["visual_tokens"] for r in rows)
    assert all("correct" in r and r["projected_speedup"] > 0 for r in rows)


@pytest.mark.parametrize("args, message", [
    (("sample-2", QUESTION, ["fastv"], "abc", 2, 2, 1), "retention must be a number, got 'abc'"),
    (("sample-2", QUESTION, "fastv", 0.25, 2, 2, 1), None),
])
def test_compare_api_checks_its_input_types(server, args, message):
    from gradio_client import Client
    client = Client(server.url, verbose=False)
    if message is None:   # one method as a string is that method, not its characters
        assert [r["method"] for r in client.predict(*args, api_name="/compare")["rows"]] == ["none", "fastv"]
        return
    with pytest.raises(Exception, match=message):
        client.predict(*args, api_name="/compare")
