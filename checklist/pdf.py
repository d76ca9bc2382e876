"""What WeasyPrint may read while it renders a PDF: our own static files and nothing else.

A document can name any URL (an image, a stylesheet, an @import, a font); WeasyPrint's default
fetcher would open it from the server: http(s) to the internal network, file: to the disk.
`StaticOnlyFetcher` answers from the static folders only (the collected STATIC_ROOT, else the
staticfiles finders), with a path-containment check, plus inline `data:` fonts. Everything else
is refused; WeasyPrint logs the refusal and renders on without the resource.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import DataHandler, Request

from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.exceptions import SuspiciousFileOperation
from weasyprint.urls import URLFetcher, URLFetcherResponse

# The media types a data: URL may carry: fonts only.
FONT_TYPES = ("font/", "application/font-", "application/x-font-", "application/vnd.ms-fontobject")


class RefusedURL(ValueError):
    """A URL the PDF renderer may not read."""


class StaticOnlyFetcher(URLFetcher):
    """Serves `<base origin>/static/...` from the static folders and inline font data; refuses
    every other URL (other hosts, file:, ftp:, other data:, anything else), whatever the
    document says."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        super().__init__(allowed_protocols=set(), allow_redirects=False, **kwargs)
        base = urlsplit(base_url)
        self._origin = (base.scheme.lower(), base.netloc.lower())
        self._static_prefix = "/" + settings.STATIC_URL.strip("/") + "/"

    def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
        if url[:5].lower() == "data:":
            return self._font_data(url)
        try:
            parts = urlsplit(url)
        except ValueError as error:
            raise RefusedURL(f"malformed URL: {url[:200]}") from error
        origin = (parts.scheme.lower(), parts.netloc.lower())
        if origin != self._origin or not parts.path.startswith(self._static_prefix):
            raise RefusedURL(f"not one of our static files: {url[:200]}")
        path = _static_file(unquote(parts.path[len(self._static_prefix) :]))
        if path is None:
            raise RefusedURL(f"no such static file: {url[:200]}")
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": content_type})

    def _font_data(self, url: str) -> URLFetcherResponse:
        media_type = url[5:].split(",", 1)[0].split(";", 1)[0].strip().lower()
        if not media_type.startswith(FONT_TYPES):
            raise RefusedURL(f"data: URL of type {media_type[:60]!r}: only fonts are read")
        response = DataHandler().data_open(Request(url))  # noqa: S310 - data: only, no I/O
        return URLFetcherResponse(
            url, response.read(), {"Content-Type": response.headers["Content-Type"]}
        )


def _static_roots() -> list[Path]:
    """The collected static folder and every folder the staticfiles finders search."""
    roots = [Path(settings.STATIC_ROOT)] if settings.STATIC_ROOT else []
    for finder in finders.get_finders():
        storages = getattr(finder, "storages", {})
        roots.extend(Path(storage.location) for storage in storages.values())
    return [root.resolve() for root in roots]


def _static_file(relative: str) -> Path | None:
    """The file a static path names, if it lies inside the collected or an app's static
    folder; None for anything else (.., absolute paths, NUL, backslashes, folders)."""
    parts = PurePosixPath(relative).parts
    if not parts or "\x00" in relative or "\\" in relative or relative.startswith("/"):
        return None
    if any(part in ("..", ".") for part in parts):
        return None
    places = [Path(settings.STATIC_ROOT) / relative] if settings.STATIC_ROOT else []
    try:
        found = finders.find(relative)
    except SuspiciousFileOperation:
        found = None
    if isinstance(found, str):
        places.append(Path(found))
    roots = _static_roots()
    for place in places:
        resolved = place.resolve()
        if resolved.is_file() and any(resolved.is_relative_to(root) for root in roots):
            return resolved
    return None
