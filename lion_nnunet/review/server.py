"""``lion review --serve``: the gallery folder over HTTP on 127.0.0.1, recording decisions.

Standard library only (``http.server``): ``GET`` serves the files of the gallery folder,
``GET api/reviews`` answers the rows of reviews.csv as JSON, and ``POST api/reviews`` with a JSON
object ``{case_id, decision, comment, reviewer}`` replaces that case's row of
``GALLERY/reviews.csv`` (atomically, :class:`~lion_nnunet.review.reviews.ReviewBook`) and answers
the row as recorded. The server binds the loopback address only: other computers cannot reach
it, and a POST from a page of another origin is refused.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from lion_nnunet.errors import LionError

from .reviews import ReviewBook, clean_review

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
DEFAULT_PORT = 8765
API = "/api/reviews"
#: Largest POST body read (bytes): a review is a few hundred.
MAX_BODY = 64 * 1024


class ReviewHandler(SimpleHTTPRequestHandler):
    """Static files of the gallery plus :data:`API`; quiet (messages go to the log)."""

    book: ReviewBook
    case_ids: set[str]

    def log_message(self, format: str, *args) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def _answer(self, status: HTTPStatus, data: object) -> None:
        body = json.dumps(data).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.split("?")[0] == API:
            self._answer(HTTPStatus.OK, self.book.rows())
            return
        super().do_GET()

    def do_POST(self) -> None:
        if self.path.split("?")[0] != API:
            self._answer(HTTPStatus.NOT_FOUND, {"error": f"POST only to {API}"})
            return
        origin = self.headers.get("Origin")
        host = self.headers.get("Host", "")
        if origin is not None and origin.split("://", 1)[-1] != host:  # "null": a file:// page
            self._answer(HTTPStatus.FORBIDDEN, {"error": f"origin {origin} is not this gallery"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            self._answer(HTTPStatus.BAD_REQUEST, {"error": f"body of 1..{MAX_BODY} bytes expected"})
            return
        try:
            row = clean_review(json.loads(self.rfile.read(length)), self.case_ids)
        except (ValueError, UnicodeDecodeError) as e:  # json.JSONDecodeError is a ValueError
            self._answer(HTTPStatus.BAD_REQUEST, {"error": str(e)})
            return
        try:
            self.book.record(row)
        except (OSError, LionError) as e:
            log.error("%s: review of %s not recorded: %s", self.book.path, row["case_id"], e)
            self._answer(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"not recorded: {e}"})
            return
        log.info("%s: %s %s", self.book.path.name, row["case_id"], row["decision"] or "comment")
        self._answer(HTTPStatus.OK, row)


def make_server(gallery_dir: str | Path, case_ids: set[str], port: int = DEFAULT_PORT,
                host: str = HOST) -> ThreadingHTTPServer:  # fmt: skip
    """A server (not yet running) for ``gallery_dir`` on ``host:port`` (port 0: a free one).

    Call ``serve_forever()`` on it (in a thread, or until Ctrl-C) and ``server_close()`` after.
    """
    gallery_dir = Path(gallery_dir)
    handler = type("Handler", (ReviewHandler,), {
        "book": ReviewBook(gallery_dir / "reviews.csv"), "case_ids": set(case_ids),
    })  # fmt: skip
    try:
        return ThreadingHTTPServer((host, port), partial(handler, directory=str(gallery_dir)))
    except OSError as e:
        raise LionError(
            f"cannot listen on {host}:{port} ({e.strerror or e}); pass another port "
            "(--serve PORT, or --serve 0 for a free one)"
        ) from None


def url_of(server: ThreadingHTTPServer) -> str:
    """The page's address, e.g. ``http://127.0.0.1:8765/``."""
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/"
