"""Secrets never leak: one full scenario against real server subprocesses at LOG_LEVEL=DEBUG — account
created with a password, failed and successful logins, API key use, credentials saved via POST /api/env,
signing, ECDH through NIP-44/NIP-04, error paths (bad password, bad credentials, bad keys), logout — while
an event client records every frame. The logs, every frame, every page and every API response are then
searched for the share (bfshare string, seckey, binder_sn and hidden_sn in hex), the session id (raw and as
the cookie value), the API key and the password; the SQLite files must not hold the share or the password."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tornado.httpclient
import tornado.websocket

from node.crypto import curve
from node.crypto.credentials import decode_share
from node.keytools import keygen
from tests.igloo_process import API_KEY, ROOT, ServerProc

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]
PASSWORD = "leak-test password " + secrets.token_hex(6)


def variants(secret: str) -> set[str]:
    """The secret as it could appear: itself, lower/upper case, base64 and url-safe base64 of its bytes."""
    raw = secret.encode()
    return {secret, secret.lower(), secret.upper(), base64.b64encode(raw).decode().rstrip("="),
            base64.urlsafe_b64encode(raw).decode().rstrip("=")}


async def test_no_secret_leaks(tmp_path: Path) -> None:
    keys = keygen(2, 3)
    other = keygen(2, 3)
    share_a, share_b = keys["shares"][0], keys["shares"][1]
    env = {"LOG_LEVEL": "DEBUG", "FROSTR_SIGN_TIMEOUT": "3000", "IGLOO_DEMO": "false", "SIGN_BUDGET": "100"}
    a = ServerProc(tmp_path / "a", env=env)
    b = ServerProc(tmp_path / "b", env={**env, "GROUP_CRED": keys["group"], "SHARE_CRED": share_b,
                                        "RELAYS": a.relay_url})
    a.data_dir.mkdir(parents=True)
    created = subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "adduser", "alice", "--password-stdin"],
        input=PASSWORD + "\n", env=a.env, cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
    )
    assert created.returncode == 0, created.stderr
    outputs: list[str] = [created.stdout, created.stderr]
    frames: list[str] = []
    session_ids: list[str] = []
    cookies: list[str] = []
    try:
        await a.start()
        ws = await a.events(since=0)

        async def record() -> None:
            while True:
                message = await ws.read_message()
                if message is None:
                    return
                frames.append(str(message))

        recorder = asyncio.ensure_future(record())
        anon = {"Content-Type": "application/json"}

        async def call(method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                       raw: str | None = None) -> tuple[int, Any]:
            request = tornado.httpclient.HTTPRequest(
                a.base + path, method=method, headers=headers if headers is not None else
                {"X-API-Key": API_KEY, "Content-Type": "application/json"},
                body=raw if raw is not None else (None if body is None else json.dumps(body)),
                request_timeout=15, follow_redirects=False)
            response = await a.client.fetch(request, raise_error=False)
            text = response.body.decode(errors="replace") if response.body else ""
            issued = json.loads(text).get("sessionId") if path == "/api/auth/login" and response.code == 200 \
                else None
            if issued:  # the login answer is where a session id belongs (Igloo Server's API); nowhere else
                session_ids.append(issued)
                outputs.append(f"{response.code} {text.replace(issued, '<issued>')}")
            else:
                outputs.append(f"{response.code} {dict(response.headers)!r} {text}")
            for value in response.headers.get_list("Set-Cookie"):
                if not value.startswith("igloo_session="):
                    continue
                value = value.split(";", 1)[0].split("=", 1)[1]
                if len(value) > 20:  # not the empty value a logout sets
                    cookies.append(value)
            return response.code, text

        # Logins: bad password, then good.
        wrong = {"username": "alice", "password": PASSWORD + "x"}
        code, _ = await call("POST", "/api/auth/login", wrong, anon)
        assert code == 401
        code, text = await call("POST", "/api/auth/login", {"username": "alice", "password": PASSWORD}, anon)
        assert code == 200 and session_ids
        cookie = {"Cookie": f"igloo_session={cookies[-1]}"}
        for page in ("/dashboard", "/configure", "/login", "/onboarding", "/"):
            await call("GET", page, headers=cookie)
        await call("GET", "/login", headers={})
        # Credentials: bad ones, then good ones (stored encrypted, node restarts on them).
        for bad in ({"GROUP_CRED": keys["group"], "SHARE_CRED": other["shares"][0]},
                    {"GROUP_CRED": keys["group"], "SHARE_CRED": share_a[:-6] + "qqqqqq"},
                    {"GROUP_CRED": "bfgroup1nonsense", "SHARE_CRED": share_a}):
            code, _ = await call("POST", "/api/env", bad)
            assert code == 400
        code, _ = await call("POST", "/api/env", {"GROUP_CRED": keys["group"], "SHARE_CRED": share_a})
        assert code == 200
        await a.wait_status(lambda s: bool(s.get("ready")), 10)
        await b.start(ready=True)
        # Signing and ECDH through the API, with the session header and with the API key.
        for headers in ({"X-Session-ID": session_ids[0], "Content-Type": "application/json"}, None):
            code, text = await call("POST", "/api/sign", {"message": secrets.token_hex(32)}, headers)
            assert code == 200, text
        peer_pk = curve.pubkey_of(secrets.token_bytes(32))[1:].hex()
        code, text = await call("POST", "/api/nip44/encrypt", {"peer_pubkey": peer_pk, "content": "hi"})
        assert code == 200, text
        code, text = await call("POST", "/api/nip44/decrypt", {"peer_pubkey": peer_pk,
                                                                "content": json.loads(text)["result"]})
        assert code == 200 and json.loads(text)["result"] == "hi"
        await call("POST", "/api/nip04/encrypt", {"peer_pubkey": peer_pk, "content": "hello"})
        await call("POST", "/api/peers/ping", {"target": "all"})
        for path in ("/api/status", "/api/peers", "/api/env", "/api/peers/self", "/api/peers/group",
                     "/api/peers/policies", "/api/approvals", "/api/auth/status"):
            await call("GET", path)
            await call("GET", path, headers=cookie)
        # Error paths: wrong API key, wrong session, a cookie that was forged, a credential in the query.
        await call("GET", "/api/peers", headers={"X-API-Key": API_KEY[:-1] + "x"})
        await call("GET", "/api/peers", headers={"X-Session-ID": session_ids[0][:-2] + "xx"})
        await call("GET", f"/api/peers?apiKey={API_KEY}", headers={})
        await call("POST", "/api/sign", raw="{not json")
        # A second session through the form, then logout of both.
        code, _ = await call("POST", "/api/auth/login", {"username": "alice", "password": PASSWORD}, anon)
        for sid in session_ids:
            await call("POST", "/api/auth/logout", headers={"X-Session-ID": sid}, raw="")
        # The whole stored history, from a fresh client: up to the last seq its greeting names.
        history = await a.events(since=0)
        greeting = await asyncio.wait_for(history.read_message(), 5.0)
        assert greeting is not None
        frames.append(str(greeting))
        last_seq = json.loads(greeting)["data"]["lastSeq"]
        while True:
            message = await asyncio.wait_for(history.read_message(), 5.0)
            assert message is not None, "the history ended before the greeting's lastSeq"
            frames.append(str(message))
            seq = json.loads(message).get("seq")
            if isinstance(seq, int) and seq >= last_seq:
                break
        history.close()
        ws.close()
        await asyncio.wait_for(recorder, 5)
    finally:
        await b.stop()
        await a.stop()
        a.client.close()
        b.client.close()

    assert len(frames) > 40 and any("Signature shares aggregated" in f for f in frames)
    assert session_ids and cookies
    share_pkgs = [decode_share(share_a), decode_share(share_b)]
    secrets_to_find: dict[str, set[str]] = {
        "password": variants(PASSWORD),
        "api key": variants(API_KEY),
        "share a": {share_a},
        "share b": {share_b},
    }
    for n, pkg in enumerate(share_pkgs):
        for name in ("seckey", "binder_sn", "hidden_sn"):
            secrets_to_find[f"share {n} {name}"] = variants(getattr(pkg, name).hex())
    for n, sid in enumerate(session_ids):
        secrets_to_find[f"session id {n}"] = variants(sid)
    for n, value in enumerate(cookies):
        secrets_to_find[f"cookie {n}"] = {value}
    # The request's own Set-Cookie is where a cookie belongs: drop those headers before searching.
    responses = [o.split(" {", 1)[0] + " " + o.split("} ", 1)[-1] if "Set-Cookie" in o else o
                 for o in outputs]
    haystacks = {
        "log a": a.log_path.read_text(errors="replace"),
        "log b": b.log_path.read_text(errors="replace"),
        "events": "\n".join(frames),
        "responses and pages": "\n".join(responses),
    }
    assert "DEBUG" in haystacks["log a"]  # debug logging was really on
    for where, text in haystacks.items():
        for what, forms in secrets_to_find.items():
            found = [f for f in forms if f and f in text]
            assert not found, f"{what} found in {where}"
    for db_file in sorted(a.data_dir.glob("igloo.db*")):
        blob = db_file.read_bytes()
        for what in ("share a", "password"):
            for form in secrets_to_find[what]:
                assert form.encode() not in blob, f"{what} in {db_file.name}"
        for name in ("seckey", "binder_sn", "hidden_sn"):
            assert getattr(share_pkgs[0], name) not in blob and getattr(share_pkgs[0], name).hex().encode() \
                not in blob, f"share {name} in {db_file.name}"
