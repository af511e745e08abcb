"""The framework floor: a bare Tornado broadcast loop, for comparison with Igloo's event stream.

No authentication, no persistence, no node: one WebSocketHandler at /api/events keeping its sockets in a set,
and a publisher that serializes each event (same frame shape as Igloo's: type, message, data, timestamp, id,
seq) and calls ``write_message`` on every client, the way a plain Tornado app would.

``python bench/broadcast_floor.py --port P`` then:

- ``GET /api/status`` → ``{"lastSeq", "connections"}``
- ``POST /drive`` ``{"rate": events/s, "seconds": s}`` (``rate`` 0 = as fast as the loop allows) → runs the
  publisher, answers ``{"events", "seconds"}`` when done.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import secrets
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

import tornado.web
import tornado.websocket


class Hub:
    """The sockets and the sequence counter."""

    clients: ClassVar[set[FloorSocket]] = set()
    seq = 0


class FloorSocket(tornado.websocket.WebSocketHandler):
    """One client: joins the set on open, leaves on close."""

    def open(self, *args: Any, **kwargs: Any) -> None:
        """Join the broadcast set."""
        Hub.clients.add(self)

    def on_close(self) -> None:
        """Leave the broadcast set."""
        Hub.clients.discard(self)

    def on_message(self, message: str | bytes) -> None:
        """Clients send nothing the floor cares about."""


def publish(message: str, data: object) -> None:
    """Serialize one event and write it to every client with write_message."""
    Hub.seq += 1
    body = {
        "type": "bifrost",
        "message": message,
        "data": data,
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "id": secrets.token_hex(8),
        "seq": Hub.seq,
    }
    payload = json.dumps(body, separators=(",", ":"))
    for client in list(Hub.clients):
        try:
            client.write_message(payload)
        except tornado.websocket.WebSocketClosedError:
            Hub.clients.discard(client)


class StatusHandler(tornado.web.RequestHandler):
    """GET /api/status."""

    def get(self) -> None:
        """Sequence and connection count."""
        self.write({"lastSeq": Hub.seq, "connections": len(Hub.clients)})


class DriveHandler(tornado.web.RequestHandler):
    """POST /drive: publish at a rate (or flat out) for some seconds."""

    async def post(self) -> None:
        """Run the publisher, then answer how many events went out."""
        args = json.loads(self.request.body or b"{}")
        rate, seconds = float(args.get("rate", 0)), float(args.get("seconds", 5))
        data = {"from": "ab" * 32, "id": "cd" * 16}
        started = time.monotonic()
        count = 0
        while (elapsed := time.monotonic() - started) < seconds:
            if rate > 0:
                due = started + count / rate
                if due > time.monotonic():
                    await asyncio.sleep(due - time.monotonic())
                    continue
            publish("Ping request", data)
            count += 1
            await asyncio.sleep(0)  # let the sockets flush between events, as separate node events would
        self.write({"events": count, "seconds": round(elapsed, 3)})


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    app = tornado.web.Application(
        [(r"/api/events", FloorSocket), (r"/api/status", StatusHandler), (r"/drive", DriveHandler)],
        websocket_max_message_size=4096,
    )

    async def serve() -> None:
        app.listen(args.port, "127.0.0.1")
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
