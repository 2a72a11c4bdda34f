"""``lion review --serve``: the gallery over HTTP on 127.0.0.1, recording decisions and corrections.

Standard library only (``http.server``). What it answers (the HTTP interface, docs/inference.md):

* ``GET /`` and ``GET /index.html``: the page; ``GET /images/<case>/<view>.png``: its pictures;
  ``GET /images/<case>/volumes.js``: the case's viewer data (:mod:`.volumes`);
  ``GET /vendor/niivue.umd.js``: the viewer. Nothing else of the folder is served, and there are
  no directory listings.
* ``GET /api/reviews``: the rows of reviews.csv as JSON.
* ``POST /api/reviews`` with ``{case_id, decision, comment, reviewer, lesions}``: replaces that
  case's row of ``GALLERY/reviews.csv`` (:class:`~lion_nnunet.review.reviews.ReviewBook`).
* ``POST /api/cases/<case_id>/mask`` and ``POST /api/cases/<case_id>/clicks``: a corrected mask
  (:mod:`.corrections`, only when the server knows the prediction folder); clicks are refined
  by the case's click model, else by the rule-based edit (:mod:`.click_methods`), and the
  answer's ``method`` says which.
* ``GET /api/cases/<case_id>/mask``: the case's current mask (the corrected one where it exists)
  in the raw form ``POST .../mask`` takes (gzip'd uint8 voxels, i fastest), with headers
  ``X-Lion-Corrected: true|false`` and ``X-Lion-Size: nx,ny,nz``.

Safety (a page of another site open in the same browser must neither read nor write):

* the socket binds 127.0.0.1 only: other computers cannot connect;
* every request's ``Host`` header must be ``127.0.0.1:PORT`` or ``localhost:PORT`` (the served
  port), else 403: a DNS-rebinding page (``Host: evil.example:PORT``) is refused;
* a random token, printed in the page's address (``http://127.0.0.1:PORT/?token=T``), must come
  with every ``/api/`` request as the ``X-Lion-Token`` header, else 403; the page reads it from
  its address. A POST whose ``Origin`` is another site is refused as well.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from lion_nnunet.errors import LionError

from .reviews import ReviewBook, clean_review

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
DEFAULT_PORT = 8765
API = "/api/reviews"
#: The header every /api/ request carries the server's token in.
TOKEN_HEADER = "X-Lion-Token"
#: Largest JSON body read (bytes): a review or a click list is a few hundred.
MAX_BODY = 64 * 1024
#: Largest mask body read (bytes): a gzip'd uint8 mask of a whole-body PET is a few MB.
MAX_MASK_BODY = 256 * 1024 * 1024
#: Files of the gallery that are served: the page and its pictures, nothing else.
_PICTURE = re.compile(r"^/images/([^/]+)/([^/]+\.png|volumes\.js)$")
_VENDOR = ("/vendor/niivue.umd.js", "/vendor/LICENSE-niivue.txt")
_CASE_API = re.compile(r"^/api/cases/([^/]+)/(mask|clicks)$")
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".png": "image/png",
    ".js": "text/javascript; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}


class ReviewHandler(BaseHTTPRequestHandler):
    """The gallery's page and pictures plus the API; quiet (messages go to the log)."""

    gallery: Path
    book: ReviewBook
    case_ids: set[str]
    token: str
    corrections = None  # a CorrectionStore when the prediction folder is known
    server_version = "lion-review"
    sys_version = ""

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

    def _host_ok(self) -> bool:
        """The Host header names this server (127.0.0.1 or localhost with the served port)."""
        port = self.server.server_address[1]
        host = (self.headers.get("Host") or "").strip().lower()
        if host in (f"127.0.0.1:{port}", f"localhost:{port}"):
            return True
        self._answer(HTTPStatus.FORBIDDEN, {"error": f"host {host!r} is not this server"})
        return False

    def _token_ok(self) -> bool:
        given = self.headers.get(TOKEN_HEADER) or ""
        if secrets.compare_digest(given.encode(), self.token.encode()):
            return True
        self._answer(HTTPStatus.FORBIDDEN, {
            "error": f"missing or wrong {TOKEN_HEADER} header: open the address lion review "
            "printed (with ?token=...)"})  # fmt: skip
        return False

    def _file(self, path: str) -> Path | None:
        """The gallery file a GET path names, or None: only index.html, images/*/*.png,
        images/*/volumes.js and the vendored viewer."""
        if path in ("/", "/index.html"):
            return self.gallery / "index.html"
        if path in _VENDOR:
            return self.gallery / path.lstrip("/")
        match = _PICTURE.match(path)
        if not match or any(p in ("", ".", "..") or "\\" in p for p in match.groups()):
            return None
        images = (self.gallery / "images").resolve()
        target = (images / match[1] / match[2]).resolve()
        return target if target.is_relative_to(images) else None

    def do_HEAD(self) -> None:
        self._get(head=True)

    def do_GET(self) -> None:
        self._get(head=False)

    def _get(self, head: bool) -> None:
        if not self._host_ok():
            return
        path = unquote(urlsplit(self.path).path)
        if path.startswith("/api/"):
            if not self._token_ok():
                return
            mask = _CASE_API.match(path)
            if path == API:
                self._answer(HTTPStatus.OK, self.book.rows())
            elif mask and mask[2] == "mask" and not head:
                self._send_mask(mask[1])
            else:
                self._answer(HTTPStatus.NOT_FOUND, {"error": f"no GET {path}"})
            return
        target = self._file(path)
        if target is None or not target.is_file():
            self._answer(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        body = target.read_bytes()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", _TYPES.get(target.suffix, "application/octet-stream"))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _send_mask(self, case_id: str) -> None:
        """``GET /api/cases/<case_id>/mask``: the current mask, raw (see the module docstring)."""
        if self.corrections is None or case_id not in self.case_ids:
            error = f"no mask of {case_id!r} here (serve with lion review --pred PRED --serve)"
            self._answer(HTTPStatus.NOT_FOUND, {"error": error})
            return
        try:
            body, corrected, size = self.corrections.current_mask(case_id)
        except (OSError, LionError) as e:
            self._answer(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"mask not read: {e}"})
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Lion-Corrected", "true" if corrected else "false")
        self.send_header("X-Lion-Size", ",".join(map(str, size)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self, limit: int) -> bytes | None:
        """The request body (1..limit bytes), or None after answering 400 or 413."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length > limit:
            self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                         {"error": f"body of {length} bytes; at most {limit}"})  # fmt: skip
            return None
        if length <= 0:
            self._answer(HTTPStatus.BAD_REQUEST, {"error": f"body of 1..{limit} bytes expected"})
            return None
        return self.rfile.read(length)

    def do_POST(self) -> None:
        if not self._host_ok():
            return
        path = unquote(urlsplit(self.path).path)
        case_api = _CASE_API.match(path)
        if path != API and not case_api:
            self._answer(HTTPStatus.NOT_FOUND, {"error": f"POST only to {API} or "
                                                "/api/cases/<case_id>/mask|clicks"})  # fmt: skip
            return
        origin = self.headers.get("Origin")
        host = self.headers.get("Host", "")
        if origin is not None and origin.split("://", 1)[-1] != host:  # "null": a file:// page
            self._answer(HTTPStatus.FORBIDDEN, {"error": f"origin {origin} is not this gallery"})
            return
        if not self._token_ok():
            return
        if case_api:
            self._correct(case_api[1], case_api[2])
            return
        body = self._body(MAX_BODY)
        if body is None:
            return
        try:
            row = clean_review(json.loads(body), self.case_ids)
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

    def _correct(self, case_id: str, kind: str) -> None:
        """``POST /api/cases/<case_id>/mask|clicks``: see :mod:`.corrections`."""
        if self.corrections is None:
            self._answer(HTTPStatus.NOT_FOUND, {
                "error": "corrections need the prediction folder: serve with lion review "
                "--pred PRED --serve"})  # fmt: skip
            return
        if case_id not in self.case_ids:
            self._answer(HTTPStatus.NOT_FOUND, {"error": f"unknown case_id {case_id!r}"})
            return
        body = self._body(MAX_MASK_BODY if kind == "mask" else MAX_BODY)
        if body is None:
            return
        reviewer = (self.headers.get("X-Lion-Reviewer") or "").strip()
        try:
            if kind == "mask":
                content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                result = self.corrections.save_mask(case_id, body, content_type, reviewer)
            else:
                try:
                    data = json.loads(body)
                except (ValueError, UnicodeDecodeError) as e:
                    raise LionError(f"clicks: not JSON ({e})") from None
                result = self.corrections.save_clicks(case_id, data, reviewer)
        except LionError as e:
            self._answer(HTTPStatus.BAD_REQUEST, {"error": str(e)})
            return
        except OSError as e:
            log.error("%s: correction not saved: %s", case_id, e)
            self._answer(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"not saved: {e}"})
            return
        self._answer(HTTPStatus.OK, result)


def make_server(
    gallery_dir: str | Path,
    case_ids: set[str],
    port: int = DEFAULT_PORT,
    host: str = HOST,
    pred_dir: str | Path | None = None,
    pet_dir: str | Path | None = None,
    token: str | None = None,
) -> ThreadingHTTPServer:
    """A server (not yet running) for ``gallery_dir`` on ``host:port`` (port 0: a free one).

    ``pred_dir`` (``lion predict``'s output folder) enables the mask and clicks API
    (:class:`~lion_nnunet.review.corrections.CorrectionStore`, ``server.corrections``; PET
    from ``pet_dir`` or the case folders). ``token`` defaults to a fresh random one
    (``server.token``). Call
    ``serve_forever()`` on it (in a thread, or until Ctrl-C) and ``server_close()`` after.
    """
    gallery_dir = Path(gallery_dir)
    corrections = None
    token = token or secrets.token_urlsafe(24)
    book = ReviewBook(gallery_dir / "reviews.csv")
    if pred_dir is not None:
        from .corrections import CorrectionStore

        corrections = CorrectionStore(pred_dir, book, pet_dir)
    handler = type("Handler", (ReviewHandler,), {
        "gallery": gallery_dir, "book": book,
        "case_ids": set(case_ids), "token": token, "corrections": corrections,
    })  # fmt: skip
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as e:
        raise LionError(
            f"cannot listen on {host}:{port} ({e.strerror or e}); pass another port "
            "(--serve PORT, or --serve 0 for a free one)"
        ) from None
    server.token = token  # type: ignore[attr-defined]
    server.corrections = corrections  # type: ignore[attr-defined]
    return server


def url_of(server: ThreadingHTTPServer) -> str:
    """The page's address with its token, e.g. ``http://127.0.0.1:8765/?token=T``."""
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/?token={server.token}"  # type: ignore[attr-defined]
