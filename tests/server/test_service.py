"""igloo.service: required directives, `systemd-analyze verify`, and that the crypto libraries work under
the kernel's deny-write-execute protection (what MemoryDenyWriteExecute=yes enforces)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "igloo.service"


def directives() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_unit_has_the_required_settings() -> None:
    d = directives()
    expected = {
        "DynamicUser": "yes", "StateDirectory": "igloo", "Environment": "DATA_DIR=/var/lib/igloo",
        "EnvironmentFile": "-/etc/igloo/igloo.env", "Restart": "on-failure",
        "ExecStart": "/opt/igloo/.venv/bin/igloo-server serve", "NoNewPrivileges": "yes",
        "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "RestrictNamespaces": "yes", "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
        "SystemCallFilter": "@system-service", "CapabilityBoundingSet": "", "UMask": "0077",
    }
    for key, value in expected.items():
        assert value in d.get(key, []), key
    assert any(v.startswith("igloo-credentials-key:") for v in d["LoadCredential"])


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not available")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # The venv and checkout paths do not exist on a build machine: point them at something that does.
    text = UNIT.read_text()
    text = text.replace("/opt/igloo/.venv/bin/igloo-server serve", "/bin/true")
    text = text.replace("WorkingDirectory=/opt/igloo", f"WorkingDirectory={tmp_path}")
    copy = tmp_path / "igloo.service"
    copy.write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(copy)],
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0 and "Failed to" in result.stderr and "igloo.service:" not in result.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {result.stderr.strip()[:200]}")
    assert result.returncode == 0, result.stderr
    assert "igloo.service:" not in result.stderr, result.stderr  # no warnings about our unit


MDWE_PROBE = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit(77)
import bcrypt
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from node.crypto import curve
key = bytes(range(1, 33))
assert bcrypt.checkpw(b"pw", bcrypt.hashpw(b"pw", bcrypt.gensalt(4)))
AESGCM(key).encrypt(bytes(12), b"x", None)
ChaCha20Poly1305(key).encrypt(bytes(12), b"x", None)
sig = curve.schnorr_sign(key, key, key)
assert curve.schnorr_verify(curve.xonly(curve.pubkey_of(key)), key, sig)
print("ok")
"""


def test_crypto_works_with_memory_deny_write_execute() -> None:
    result = subprocess.run([sys.executable, "-c", MDWE_PROBE], capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    if result.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE")
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
