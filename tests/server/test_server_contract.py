"""The OpenAPI document is the contract: schemathesis reads the running server's /openapi.json,
generates requests the document calls valid (each must be accepted) and requests it rules out
(each must be refused with a 4xx), and checks every answer against the document (status codes,
content types, response schemas, 405 + Allow on undocumented methods), never a 5xx.

Besides the coverage phase (hundreds of requests at the document's edges), the suite runs 10
generated examples per operation with a fixed seed (the same requests on every run, so the suite
is reproducible) and `nox -s fuzz` (Hypothesis's `fuzz` profile) 100 with a fresh seed each run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from hypothesis import settings

from .serving import running_server

pytestmark = [pytest.mark.conversion, pytest.mark.fuzz]

EXAMPLES_SHARE = 100  # schemathesis examples per operation: Hypothesis's max_examples / 100
SUITE_SEED = 1  # the suite's requests; the fuzz profile draws new ones every run


@pytest.fixture(scope="module")
def server(digits_artifacts):
    with running_server(digits_artifacts["tflite"], max_body_bytes=4_000_000) as running:
        yield running


def _schemathesis(
    url: str, examples: int, workdir: Path, *, seed: int | None
) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(examples),
        "--request-timeout",
        "20",
        "--continue-on-failure",
        "--no-color",
        *(["--seed", str(seed)] if seed is not None else []),
    ]
    # its example database goes to the working directory
    return subprocess.run(command, capture_output=True, text=True, timeout=3600, cwd=workdir)


def test_the_server_keeps_every_promise_of_its_openapi_document(server, tmp_path):
    examples = max(settings().max_examples // EXAMPLES_SHARE, 10)
    seed = SUITE_SEED if examples == 10 else None
    result = _schemathesis(server.url, examples, tmp_path, seed=seed)
    report = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    assert "No issues found" in result.stdout, report
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert f"✅  {phase}" in result.stdout, report
    assert httpx.get(server.url + "/v2/health/ready").status_code == 200


def test_the_document_names_the_model_and_ties_shape_to_data(server):
    document = httpx.get(server.url + "/openapi.json").json()
    request = document["components"]["schemas"]["InferenceRequest"]
    inputs = request["properties"]["inputs"]
    assert (inputs["minItems"], inputs["maxItems"]) == (1, 1)
    image = inputs["items"]
    assert image["properties"]["name"] == {"const": "image"}
    assert image["properties"]["datatype"] == {"const": "FP32"}
    branches = image["anyOf"]
    assert len(branches) == 33  # 0 ... 32 rows (max_batch_size)
    seven = branches[7]["properties"]
    assert seven["shape"] == {"const": [7, 8, 8, 1]}
    flat, nested = seven["data"]["anyOf"]
    assert flat["minItems"] == flat["maxItems"] == 7 * 64
    assert flat["items"]["maximum"] == pytest.approx(3.4028234663852886e38)
    assert nested["minItems"] == 7 and nested["items"]["items"]["minItems"] == 8
    outputs = request["properties"]["outputs"]["items"]["properties"]
    assert outputs["name"] == {"enum": ["output_0"]}
    predict = document["paths"]["/v2/models/{name}/predict"]["post"]
    assert set(predict["requestBody"]["content"]) == {"application/json", "image/png", "image/jpeg"}
    assert predict["parameters"][0]["schema"]["enum"] == ["digits"]
