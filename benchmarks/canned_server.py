"""A canned HTTP/1.1 server for the HTTP benchmarks: fixed, pre-recorded answers, keep-alive.

Every answer is serialised once, up front; a request costs parsing its head, reading its body and
one write, so the server is not what a benchmark measures. Answers are looked up by method and
path (query ignored) in a JSON file ``{"POST /host/path": {"status": 200, "headers": [...],
"body": "..."}}``; anything else gets a 404.

    python benchmarks/canned_server.py --port 0 --answers answers.json

Prints ``port N`` as soon as it listens, waits for the answers file (it may name the server's own
URL), then prints ``ready``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
from pathlib import Path

NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


def load(path: Path) -> dict[bytes, bytes]:
    while not path.exists():
        time.sleep(0.01)
    answers = {}
    for key, answer in json.loads(path.read_text()).items():
        body = answer["body"].encode()
        head = [f"HTTP/1.1 {answer['status']} X"]
        head += [f"{name}: {value}" for name, value in answer["headers"]]
        head.append(f"Content-Length: {len(body)}")
        answers[key.encode()] = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    return answers


async def serve(sock: socket.socket, answers: dict[bytes, bytes]) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, _, rest = head.partition(b"\r\n")
                method, target, _ = request_line.split(b" ", 2)
                length = 0
                for line in rest.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                key = method + b" " + target.split(b"?", 1)[0]
                writer.write(answers.get(key, NOT_FOUND))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, sock=sock)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--answers", type=Path, required=True)
    args = parser.parse_args()
    sock = socket.create_server(("127.0.0.1", args.port), backlog=128)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    print(f"port {sock.getsockname()[1]}", flush=True)
    answers = load(args.answers)
    print("ready", flush=True)
    try:
        asyncio.run(serve(sock, answers))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
