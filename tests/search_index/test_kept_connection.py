"""The storefront's own HTTP/1.1 exchange with Meilisearch (search_index.client): how answers are
framed and when the kept connection is dropped, against a scripted server on a loopback socket.

The real Meilisearch answers with Content-Length on a kept-alive connection
(tests/storefront/test_search_queries.py); these are the other shapes an HTTP server (or a proxy
in front of Meilisearch) may answer with, and the ways a connection can fail.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Sequence

import meilisearch
import orjson
import pytest

from search_index import client as search_client
from search_index.client import SearchUnavailable, make_client, run_multi_search

ANSWER = orjson.dumps({"results": [{"indexUid": "products", "hits": [], "totalHits": 0}]})


class ScriptedServer:
    """Accepts connections one after another; answers each request it reads with the next of
    `replies` (raw bytes; None closes the connection without answering). Records the requests."""

    def __init__(self, replies: Sequence[bytes | None]) -> None:
        self.replies = list(replies)
        self.requests: list[bytes] = []
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read_request(self, conn: socket.socket) -> bytes | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            body += conn.recv(65536)
        return head + b"\r\n\r\n" + body

    def _serve(self) -> None:
        while self.replies:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                while self.replies:
                    request = self._read_request(conn)
                    if request is None:
                        break
                    self.requests.append(request)
                    reply = self.replies.pop(0)
                    if reply is None:
                        break
                    conn.sendall(reply)
                    if b"connection: close" in reply.lower():
                        break

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def scripted() -> Iterator[list[ScriptedServer]]:
    started: list[ScriptedServer] = []
    yield started
    for server in started:
        server.close()
    search_client._local.__dict__.clear()  # no connection kept to a server that is gone


def serve(started: list[ScriptedServer], *replies: bytes | None) -> meilisearch.Client:
    server = ScriptedServer(replies)
    started.append(server)
    return make_client(f"http://127.0.0.1:{server.port}", "a-key-of-sixteen-bytes")


def ok(body: bytes = ANSWER, *extra_headers: str) -> bytes:
    head = ["HTTP/1.1 200 OK", "Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join([*head, *extra_headers]) + "\r\n\r\n").encode() + body


def chunked(body: bytes) -> bytes:
    middle = len(body) // 2
    parts = [body[:middle], body[middle:]]
    encoded = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in parts)
    head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    return head.encode() + encoded + b"0\r\n\r\n"


def test_the_request_is_one_post_with_the_key_and_length_and_the_connection_is_kept(
    scripted: list[ScriptedServer],
) -> None:
    client = serve(scripted, ok(), ok())
    queries = [{"indexUid": "products", "q": "tv"}]

    assert run_multi_search(client, queries)[0]["totalHits"] == 0
    assert run_multi_search(client, queries)[0]["totalHits"] == 0

    server = scripted[0]
    assert server.connections == 1, "the second search reuses the first one's connection"
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /multi-search HTTP/1.1"
    assert b"Authorization: Bearer a-key-of-sixteen-bytes" in lines
    assert f"Content-Length: {len(body)}".encode() in lines
    assert orjson.loads(body) == {"queries": queries}


def test_a_chunked_answer_is_read_whole(scripted: list[ScriptedServer]) -> None:
    client = serve(scripted, chunked(ANSWER))

    assert (
        run_multi_search(client, [{"indexUid": "products", "q": "tv"}])
        == orjson.loads(ANSWER)["results"]
    )


def test_an_answer_that_closes_the_connection_is_not_reused(
    scripted: list[ScriptedServer],
) -> None:
    client = serve(scripted, ok(ANSWER, "Connection: close"), ok())

    run_multi_search(client, [{"indexUid": "products", "q": "tv"}])
    run_multi_search(client, [{"indexUid": "products", "q": "tv"}])

    assert scripted[0].connections == 2


def test_a_server_that_closes_without_answering_a_new_connection_is_search_unavailable(
    scripted: list[ScriptedServer],
) -> None:
    client = serve(scripted, None)

    with pytest.raises(SearchUnavailable) as caught:
        run_multi_search(client, [{"indexUid": "products", "q": "tv"}])
    assert caught.value.reason == "unreachable"


def test_an_answer_cut_off_mid_body_is_search_unavailable_not_a_short_answer(
    scripted: list[ScriptedServer],
) -> None:
    whole = ok()
    # The server sends all but the body's last bytes, then closes the connection.
    client = serve(scripted, whole[:-10])

    with pytest.raises(SearchUnavailable) as caught:
        run_multi_search(client, [{"indexUid": "products", "q": "tv"}])
    assert caught.value.reason == "unreachable"


def test_bytes_that_are_not_http_are_search_unavailable(scripted: list[ScriptedServer]) -> None:
    client = serve(scripted, b"SSH-2.0-OpenSSH_9.2\r\n\r\n")

    with pytest.raises(SearchUnavailable) as caught:
        run_multi_search(client, [{"indexUid": "products", "q": "tv"}])
    assert caught.value.reason == "unreachable"


def test_an_error_status_is_read_from_the_answer(scripted: list[ScriptedServer]) -> None:
    refusal = orjson.dumps({"message": "Index `nope` not found.", "code": "index_not_found"})
    client = serve(scripted, ok(refusal).replace(b"200 OK", b"404 Not Found"))

    with pytest.raises(SearchUnavailable) as caught:
        run_multi_search(client, [{"indexUid": "nope", "q": "tv"}])
    assert caught.value.reason == "index_missing"


def test_a_key_with_a_line_break_is_refused_before_anything_is_sent(
    scripted: list[ScriptedServer],
) -> None:
    server = ScriptedServer([ok()])
    scripted.append(server)
    client = make_client(f"http://127.0.0.1:{server.port}", "key\r\nX-Injected: yes")

    with pytest.raises(SearchUnavailable) as caught:
        run_multi_search(client, [{"indexUid": "products", "q": "tv"}])
    assert caught.value.reason == "error"
    assert server.requests == []
