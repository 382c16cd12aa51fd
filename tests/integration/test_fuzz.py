"""A third-party fuzzer against the running API: schemathesis generates requests from
/openapi.json for every operation (both bulk uploads included, in each of their formats) and
checks that none gets a server error or takes more than 5 s. Then the API must still be alive.

The seed is random unless SESPCL_FUZZ_SEED is set; the output names it, so a failure found once
is found again with `SESPCL_FUZZ_SEED=<seed> make test`."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
EXAMPLES = int(os.environ.get("SESPCL_FUZZ_EXAMPLES", "40"))


def test_the_api_answers_every_generated_request_without_a_server_error(
    api_url: str, api_key: str, tmp_path: Path
) -> None:
    seed = os.environ.get("SESPCL_FUZZ_SEED") or str(random.getrandbits(64))
    operations = sum(
        len(methods) for methods in json.loads((REPO / "docs/openapi.json").read_text())["paths"].values()
    )
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{api_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {api_key}",
            "--checks",
            "not_a_server_error",
            "--max-response-time",
            "5",
            "--max-examples",
            str(EXAMPLES),
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            seed,
            "--request-timeout",
            "15",
            "--report-dir",
            str(tmp_path),
            "--no-color",
        ],  # fmt: skip
        cwd=tmp_path,  # schemathesis keeps a cache in its working directory
        env={**os.environ, "PYTHONPATH": str(REPO), "SCHEMATHESIS_HOOKS": "tests.integration.fuzz_hooks"},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    report = result.stdout[-12000:] + result.stderr[-2000:]
    print(f"fuzz report (seed {seed}):\n{report}")
    assert result.returncode == 0, f"schemathesis found failures (seed {seed}):\n{report}"
    selected = re.search(r"Selected: (\d+)/(\d+)", result.stdout)
    tested = re.search(r"Tested: (\d+)", result.stdout)
    assert selected and tested, "schemathesis's summary names what it tested"
    # every operation but the schema's own GET /openapi.json, which schemathesis loads, not fuzzes
    assert int(selected[1]) == int(selected[2]) == int(tested[1]) == operations - 1, selected[0]

    live = httpx.get(f"{api_url}/health/live", timeout=2)
    health = httpx.get(f"{api_url}/health", timeout=5)
    assert live.status_code == 200 and health.status_code == 200, (live.text, health.text)
