#!/usr/bin/env python3
"""A simulated Recall.ai create-bot endpoint, for bench/run.py's recall cell.

POST /api/v1/bot/ behaves as Recall documents it (docs.recall.ai, API
errors), in scaled time:

  429  more than --limit requests in the last --window seconds from one API
       key (the Authorization header's value), with Retry-After: the whole
       seconds until the oldest of them leaves the window (at least 1).
       The window is a sliding log, as Django REST framework's throttle
       keeps it: every request it lets through counts, whatever the answer
       (a 507 too); a refused one does not.
  507  while the bot pool is empty (an outage, switched by the bench), with
       Retry-After: --bot-retry-after ("out of ad-hoc bots: retry in 30
       seconds", scaled).
  201  otherwise, with a bot's JSON.
  401  without an Authorization header.

The limit is checked first, as a throttle runs before the view. Every
create-bot request is logged (CLOCK_MONOTONIC time, key, status), for the
bench to count what reached the upstream when. Other paths answer 404.

Control, on the same port (the bench only):
  POST /_sim/outage/on, /_sim/outage/off   empty or refill the pool;
                                           answers {"t": monotonic seconds}
  GET  /_sim/log                           {"log": [[t, key, status], ...]}

HTTP/1.1 with keep-alive, Content-Length or chunked request bodies (bodies
capped at 1 MiB, headers at 64 KiB); asyncio, one thread. Standard library
only. Usage:
  recall_sim.py --port P [--limit 120] [--window 60] [--bot-retry-after 30]
"""
import argparse
import asyncio
import collections
import json
import math
import sys
import time

MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024
REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized",
           404: "Not Found", 413: "Payload Too Large", 429: "Too Many Requests",
           507: "Insufficient Storage"}
BOT = {"id": "7f3a9c21-e4b8-4d0f-9a51-2c6e1d7b8f40", "meeting_url": {
    "meeting_id": "abc-defg-hij", "platform": "google_meet"}, "bot_name": "Notetaker",
    "status_changes": [], "recordings": []}


class Recall:
    """The endpoint's state: the pool, each key's window, and the log."""

    def __init__(self, limit, window, bot_retry_after):
        self.limit = limit
        self.window = window
        self.bot_retry_after = bot_retry_after
        self.outage = False
        self.windows = {}  # key -> deque of the times of counted requests
        self.log = []

    def create_bot(self, key, now):
        """(status, extra headers, body) of one create-bot request."""
        if key is None:
            return 401, {}, {"detail": "Authentication credentials were not provided."}
        w = self.windows.setdefault(key, collections.deque())
        while w and w[0] <= now - self.window:
            w.popleft()
        if len(w) >= self.limit:
            wait = w[0] + self.window - now
            status, headers = 429, {"Retry-After": str(max(1, math.ceil(wait)))}
            body = {"detail": "Request was throttled. Expected available in %d seconds."
                    % max(1, math.ceil(wait))}
        elif self.outage:
            w.append(now)
            status, headers = 507, {"Retry-After": str(self.bot_retry_after)}
            body = {"code": "insufficient_bots", "detail": "Out of ad-hoc bots: please "
                    "retry in %d seconds." % self.bot_retry_after}
        else:
            w.append(now)
            status, headers, body = 201, {}, BOT
        self.log.append((now, key, status))
        return status, headers, body


async def read_body(reader, headers):
    """The request body, or None when it is too large or malformed."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return body
            if len(body) + size > MAX_BODY:
                return None
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    n = int(headers.get("content-length", "0") or "0")
    if n < 0 or n > MAX_BODY:
        return None
    return await reader.readexactly(n) if n else b""


def answer(writer, status, headers, body, close):
    data = json.dumps(body).encode()
    head = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status")),
            "Content-Type: application/json", "Content-Length: %d" % len(data)]
    head += ["%s: %s" % kv for kv in headers.items()]
    if close:
        head.append("Connection: close")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)


def route(recall, method, path, headers):
    """(status, headers, body) of one request."""
    now = time.monotonic()
    path = path.split("?", 1)[0]
    if path == "/api/v1/bot/" and method == "POST":
        return recall.create_bot(headers.get("authorization"), now)
    if path in ("/_sim/outage/on", "/_sim/outage/off") and method == "POST":
        recall.outage = path.endswith("/on")
        return 200, {}, {"t": now, "outage": recall.outage}
    if path == "/_sim/log" and method == "GET":
        return 200, {}, {"log": recall.log}
    return 404, {}, {"detail": "Not found."}


async def serve_connection(recall, reader, writer):
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.LimitOverrunError:
                answer(writer, 400, {}, {"detail": "headers too large"}, True)
                break
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3:
                answer(writer, 400, {}, {"detail": "bad request line"}, True)
                break
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            body = await read_body(reader, headers)
            if body is None:
                answer(writer, 413, {}, {"detail": "body too large"}, True)
                break
            close = headers.get("connection", "").lower() == "close"
            status, extra, out = route(recall, parts[0], parts[1], headers)
            answer(writer, status, extra, out, close)
            await writer.drain()
            if close:
                break
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def main_async(args):
    recall = Recall(args.limit, args.window, args.bot_retry_after)
    server = await asyncio.start_server(
        lambda r, w: serve_connection(recall, r, w), "127.0.0.1", args.port,
        limit=MAX_HEAD, backlog=1024, reuse_address=True)
    print("recall_sim listening on 127.0.0.1:%d" % args.port, file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--limit", type=int, default=120, help="requests per window per key")
    ap.add_argument("--window", type=float, default=60.0, help="the limit's window, seconds")
    ap.add_argument("--bot-retry-after", type=int, default=30,
                    help="Retry-After of a 507, whole seconds")
    try:
        asyncio.run(main_async(ap.parse_args()))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
