"""The PDF export reads nothing but our static files, whatever a document names; the case's
text reaches the PDF as document text, never as style; the Markdown export escapes HTML."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.conf import settings

from checklist import notes
from checklist.models import BoardNoteVersion, Case
from checklist.pdf import RefusedURL, StaticOnlyFetcher
from tests.factories import create_note, make_signable, note_data, sign_note

BASE = "http://testserver/"


@pytest.fixture
def signable(alice_client, case):
    """A case with what signing needs."""
    return make_signable(alice_client, case)


class Listener:
    """A TCP server on a free loopback port, in a thread, recording every connection."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.1)
        self.port = self.socket.getsockname()[1]
        self.connections: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _address = self.socket.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.connections.append(conn.recv(4096) or b"(connected)")
                except OSError:
                    self.connections.append(b"(connected)")
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/css\r\n\r\nbody{}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.socket.close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


# Files opened by this process while a test watches (a Python audit hook; hooks cannot be
# removed, so this one does nothing unless a test is watching).
_opened: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if _opened is not None and event == "open" and isinstance(args[0], str | bytes):
        _opened.append(args[0].decode() if isinstance(args[0], bytes) else args[0])


sys.addaudithook(_audit)


@pytest.fixture
def opened_files():
    global _opened
    _opened = []
    yield _opened
    _opened = None


def _pdf_text(pdf: bytes) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True
    ).stdout.decode()


def _hostile_document(listener_url: str, secret: Path) -> str:
    return f"""<!doctype html><html><head>
<link rel="stylesheet" href="{listener_url}/link.css">
<link rel="stylesheet" href="file://{secret}">
<style>
@import url("{listener_url}/import.css");
@import url("file://{secret}");
@font-face {{ font-family: Stolen; src: url("{listener_url}/font.woff"); }}
body {{ background: url("file:///etc/hostname"); }}
h1 {{ background: url("{listener_url}/background.png"); }}
</style></head><body>
<h1>Rendered body text</h1>
<img src="{listener_url}/image.png"><img src="file:///etc/hostname">
<img src="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'%3E%3Cimage
 href='{listener_url}/svg.png' width='9' height='9'/%3E%3C/svg%3E">
<object data="{listener_url}/object"></object><embed src="file:///etc/hostname">
</body></html>"""


def test_a_document_naming_a_local_server_and_a_file_makes_the_renderer_fetch_neither(
    listener, opened_files, monkeypatch, tmp_path
):
    """Through `notes.render_pdf`, with its template replaced by a hostile document."""
    secret = tmp_path / "secret.css"
    secret.write_text('h1::after { content: " LEAKED-FILE"; }')
    document = _hostile_document(listener.url, secret)
    monkeypatch.setattr(notes, "render_to_string", lambda *args, **kwargs: document)
    opened_files.clear()  # watch the render only

    pdf = notes.render_pdf({"language": "en"}, BoardNoteVersion(), base_url=BASE)

    text = _pdf_text(pdf)
    assert "Rendered body text" in text  # the PDF still renders
    assert "LEAKED-FILE" not in text
    assert listener.connections == []
    assert not [path for path in opened_files if "hostname" in path or "secret" in path]


@pytest.mark.parametrize("char", ["\r", "\f"])
def test_a_label_with_a_line_break_and_css_makes_the_pdf_export_request_nothing(
    alice_client, signable, listener, char
):
    """A label stored before labels were checked: it is document text in the PDF, not CSS."""
    label = f"P0{char};content:url({listener.url}/x);"
    Case.objects.filter(pk=signable.pk).update(label=label)
    note = create_note(alice_client, signable)

    response = alice_client.get(f"/notes/{note}/v1/pdf/")

    assert response.status_code == 200 and response.content.startswith(b"%PDF")
    assert listener.connections == []
    assert "Tumour-board note: P0" in _pdf_text(response.content)


def test_no_text_of_the_case_enters_the_style_sheet(alice_client, signable):
    """The page headers and footers are set by string-set from elements, so the style sheet
    is the same whatever the case says."""
    from django.template.loader import render_to_string

    Case.objects.filter(pk=signable.pk).update(label='X"}@import url(evil.css);{"')
    create_note(alice_client, signable)
    version = BoardNoteVersion.objects.get()
    snapshot = notes.build_snapshot(version, language="en")
    html = render_to_string(
        "checklist/note_pdf.html",
        {"doc": notes.document(snapshot, "en"), "version": version, **notes.disclaimer_lines()},
    )
    style = re.search(r"<style>(.*?)</style>", html, re.DOTALL)
    assert style is not None
    assert "evil" not in style.group(1)
    board_date = note_data()["board_date"]
    assert "Practice A" not in style.group(1) and board_date not in style.group(1)
    assert "import url(evil.css)" in html  # in the document, as text


# --- the fetcher -------------------------------------------------------------------------


def test_the_fetcher_serves_our_static_files():
    response = StaticOnlyFetcher(BASE).fetch(f"{BASE}static/checklist/note.css")
    app_file = Path(settings.BASE_DIR) / "checklist" / "static" / "checklist" / "note.css"
    assert response.read() == app_file.read_bytes()
    assert response.content_type == "text/css"


def test_the_fetcher_serves_inline_fonts_only():
    font = StaticOnlyFetcher(BASE).fetch("data:font/woff2;base64,d09GMg==")
    assert font.read() == b"wOF2"
    for url in ["data:text/css,body{}", "data:image/svg+xml,<svg/>", "data:,x", "DATA:text/html,"]:
        with pytest.raises(RefusedURL):
            StaticOnlyFetcher(BASE).fetch(url)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/hostname",
        "FILE:///etc/passwd",
        "http://127.0.0.1:9977/x",
        "http://127.0.0.1:9977/static/checklist/note.css",  # another origin
        "https://testserver/static/checklist/note.css",  # another scheme
        "http://testserver/",
        "http://testserver/admin/",
        "http://testserver/static/../config/settings.py",
        "http://testserver/static/%2e%2e/%2e%2e/config/settings.py",
        "http://testserver/static/checklist/%2e%2e/%2e%2e/%2e%2e/pyproject.toml",
        "http://testserver/static/%2Fetc%2Fhostname",
        "http://testserver/static/checklist/",
        "http://testserver/static/checklist/note.css%00.png",
        "http://testserver/static/checklist\\note.css",
        "ftp://testserver/static/checklist/note.css",
        "gopher://127.0.0.1:9977/_x",
        "jar:file:///x!/y",
        "//127.0.0.1:9977/x",
        "static/checklist/note.css",
    ],
)
def test_the_fetcher_refuses_every_other_url(url):
    with pytest.raises(RefusedURL):
        StaticOnlyFetcher(BASE).fetch(url)


def test_the_fetcher_does_not_follow_a_link_out_of_the_static_folder(settings, tmp_path):
    root = tmp_path / "collected"
    (root / "checklist").mkdir(parents=True)
    (root / "checklist" / "ok.css").write_text("p{}")
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    (root / "checklist" / "link.css").symlink_to(outside)
    settings.STATIC_ROOT = str(root)
    fetcher = StaticOnlyFetcher(BASE)
    assert fetcher.fetch(f"{BASE}static/checklist/ok.css").read() == b"p{}"
    with pytest.raises(RefusedURL):
        fetcher.fetch(f"{BASE}static/checklist/link.css")


# --- the PDF still shows what it showed -----------------------------------------------------


def test_the_pdf_headers_and_footers_show_on_every_page_of_a_draft_and_a_signed_note(
    alice_client, signable
):
    note = create_note(alice_client, signable)
    draft = _pdf_text(alice_client.get(f"/notes/{note}/v1/pdf/").content)
    sign_note(alice_client, note)
    signed = _pdf_text(alice_client.get(f"/notes/{note}/v1/pdf/").content)
    digest = BoardNoteVersion.objects.get().snapshot_hash[:12]
    board_date = note_data()["board_date"]
    for text, marker in [(draft, "draft, not signed"), (signed, f"SHA-256 {digest}")]:
        pages = text.split("\f")[:-1]
        assert len(pages) >= 2
        for number, page in enumerate(pages, start=1):
            lines = [line for line in page.splitlines() if line.strip()]
            header = rf"Practice A · BC-1 · board {board_date} +page {number} of {len(pages)}$"
            footer = (
                rf"Catalogue version 1 · note version 1 · {re.escape(marker)} +No automated"
                r" recommendation was generated\.$"
            )
            assert re.match(header, lines[0]) and re.match(footer, lines[-1])
            # The elements the headers are copied from are not printed themselves.
            assert page.count("Practice A · BC-1") == 1
    assert "draft, not signed" not in signed


# --- the Markdown export ------------------------------------------------------------------


def test_the_markdown_export_escapes_html_and_keeps_typed_lines_in_their_quote(
    alice_client, signable
):
    question = "Is <script>alert(1)</script> & <b>this</b> the patient's wish?\n# no heading\n---"
    note = create_note(
        alice_client, signable, question=question, patient_goals='Say "no" to <img src=x>'
    )
    Case.objects.filter(pk=signable.pk).update(label="BC-<i>1</i>")

    text = alice_client.get(f"/notes/{note}/v1/text/").content.decode()

    assert "<script" not in text and "<b>" not in text and "<img" not in text and "<i>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;this&lt;/b&gt;" in text
    assert "the patient's wish?" in text  # apostrophes and quotes stay readable
    assert '> Say "no" to &lt;img src=x&gt;' in text
    assert "# Tumour-board note: BC-&lt;i&gt;1&lt;/i&gt;" in text
    # Every line of the question stays in its quote (inside the question's list item): none
    # starts a heading or a rule.
    assert "\n  > # no heading\n  > ---\n" in text
    assert "\n# no heading" not in text and "\n---\n" in text
    assert text.count("\n---\n") == 1
