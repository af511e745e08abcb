"""The default signing budget lets a heavy but normal hour through twice (the hour of
bench/sign_budget_session.py, replayed on a 2-of-3 group whose only online co-signer has the default
SIGN_BUDGET), and the dashboard presents the budget as a limit on abuse, not a defence against the leak."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import jinja2
import pytest

from config.settings import Settings
from node import NodeOptions, NodeService
from node.crypto.keygen import generate_dealer_pkg_gen
from tests.conftest import REPO_ROOT
from tests.node.fakenet import FakeNetwork

pytestmark = pytest.mark.timeout(60)


def session_bench() -> ModuleType:
    path = REPO_ROOT / "bench" / "sign_budget_session.py"
    spec = importlib.util.spec_from_file_location("sign_budget_session", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_a_heavy_hour_fits_twice_in_the_default_budget(tmp_path: Path) -> None:
    default = Settings(data_dir=tmp_path).sign_budget
    assert NodeOptions().sign_budget == default
    group, shares = generate_dealer_pkg_gen(2, 3)
    net = FakeNetwork()
    options = NodeOptions(sign_timeout=1.0, ping_interval=3600, sign_budget=default)
    device = NodeService(group, shares[0], ["fake://relay"], emit=lambda *a: None, pool_factory=net.factory,
                         options=options)
    igloo = NodeService(group, shares[1], ["fake://relay"], emit=lambda *a: None, pool_factory=net.factory,
                        options=options)
    try:
        for node in (device, igloo):
            await node.start()
        for peer in device.peers:  # share 3 is offline: every request goes to Igloo
            if peer != igloo.pubkey:
                device.policies.set(peer, send=False)
        # A requester that caches no ECDH secret at all: the most a normal hour costs.
        charged = await session_bench().hour(device, igloo, cache=False)
        assert charged["total"] > 400  # the hour is heavy: about 25 times the old default of 20
        assert 2 * charged["total"] <= default
        assert igloo.budget.remaining(device.pubkey) == default - charged["total"]
    finally:
        for node in (device, igloo):
            await node.stop()


def test_the_dashboard_calls_the_budget_a_limit_on_abuse() -> None:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(REPO_ROOT / "templates")), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    html = env.get_template("_node_actions.html").render(
        status={"signBudget": {"limit": 1200, "window": 3600}, "approvalMode": False, "nodeActive": True},
        static_url=lambda path: f"/static/{path}")
    text = " ".join(html.split())
    assert "three are enough for a peer to compute it" in text
    assert ("The budget (at most 1200 signatures and ECDH shares per peer per 60 min) limits abuse by a "
            "stolen or runaway device; it does not prevent the leak.") in text
