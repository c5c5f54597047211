"""Several requests at once through gradio_client: each completes with the answers it gives alone."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from demo_server import expected, shared_server

# distinct settings, so no request is served from another's cached nodes
REQUESTS = [
    ("sample-2", 4, ["fastv"], 0.25),
    ("sample-3", 4, ["uniform", "random"], 0.5),
    ("sample-2", 6, ["fastv", "uniform"], 0.3),
    ("sample-4", 2, ["random"], 0.2),
]
TOKENS = 4


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    return shared_server(request, tmp_path_factory)


def _plans(methods, retention):
    return [[]] + [[{"method": m, "retention": retention}] for m in methods]


def test_simultaneous_requests_complete_with_the_answers_of_a_run_alone(server):
    from gradio_client import Client
    from pruning_core.synthetic import make_sample
    client = Client(server.url, verbose=False)
    jobs = []
    for sample, frames, methods, retention in REQUESTS:
        question = make_sample(int(sample.split("-")[1]), frames).question.text
        jobs.append(client.submit(sample, question, methods, retention, frames, TOKENS, api_name="/compare"))
    results = [job.result(timeout=180) for job in jobs]

    for (sample, frames, methods, retention), got in zip(REQUESTS, results):
        want = expected(server.model, sample, frames, None, _plans(methods, retention), TOKENS)
        rows = got["rows"]
        assert [r["method"] for r in rows] == ["none", *methods]
        assert [r["answer"] for r in rows] == [w["answer"] for w in want], (sample, frames, methods)
        assert [r["kept_tokens"] for r in rows] == [w["kept_tokens"] for w in want]


def test_a_bad_request_beside_good_ones_fails_alone_with_its_message(server):
    from gradio_client import Client
    client = Client(server.url, verbose=False)
    question = "what colour is the circle ?"
    with ThreadPoolExecutor(2) as pool:
        bad = pool.submit(client.predict, "sample-1", "   ", ["fastv"], 0.25, 2, 2, api_name="/compare")
        good = pool.submit(client.predict, "sample-5", question, ["uniform"], 0.25, 2, 2, api_name="/compare")
        with pytest.raises(Exception, match="question is empty"):
            bad.result(timeout=120)
        rows = good.result(timeout=120)["rows"]
    assert [r["method"] for r in rows] == ["none", "uniform"]
