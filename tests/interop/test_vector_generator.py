"""tests/vectors/frostr-py-vectors.json is what js/gen_vectors.mjs writes: rerun it against the pinned npm
packages and compare every reproducible section with the copy in the repository (live values excepted)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import VECTORS_DIR
from tests.interop.conftest import JS_DIR

FILE = VECTORS_DIR / "frostr-py-vectors.json"
# Live or random in every run: timestamps, message ids, IVs, BIP-340 aux.
LIVE = {("transport", "signed_event_example"), ("transport", "nip04")}


def test_the_generator_reproduces_the_committed_vectors(js_ready: str, tmp_path: Path) -> None:
    out = tmp_path / "vectors.json"
    subprocess.run([js_ready, str(JS_DIR / "gen_vectors.mjs"), str(out)], cwd=JS_DIR, check=True,
                   capture_output=True, timeout=60)
    fresh: dict[str, Any] = json.loads(out.read_text())
    committed: dict[str, Any] = json.loads(FILE.read_text())
    assert list(fresh) == list(committed)
    for section in ("generated_with", "keysets", "sessions", "ecdh"):
        assert fresh[section] == committed[section], section
    for name, case in committed["transport"].items():
        if ("transport", name) not in LIVE:
            assert fresh["transport"][name] == case, name
    assert fresh["transport"].keys() == committed["transport"].keys()
    # The live run differs in timestamps and ids, but its signatures and ECDH result are deterministic.
    assert fresh["live_transcript"]["results"] == committed["live_transcript"]["results"]
    tags = [m["envelope"][0] for m in fresh["live_transcript"]["messages"]]
    assert tags == [m["envelope"][0] for m in committed["live_transcript"]["messages"]]
