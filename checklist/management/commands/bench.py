"""`make bench`: measures what DESIGN.md and the issues set targets for, on a scratch database.

Writes a Markdown report to docs/benchmarks.md (and prints it); a run of some sections
(`--only`) replaces just those in the report. Every section seeds its own practices, so it can
run against a database that already holds data. `--only effort` drives Chromium through the
case page against a live server on a loopback port (issue 13's effort target).
"""

from __future__ import annotations

import os
import re
import statistics
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from checklist import audit, fragments, notes, rules, services
from checklist.management.commands.seed_cases import seed
from checklist.models import AuditEvent, Case, Checklist, Membership, Practice
from checklist.progress import Progress
from tests.factories import seed_rows, verify_session

REPORT = Path(settings.BASE_DIR) / "docs" / "benchmarks.md"


_bars: dict[str, Progress] = {}


def _progress(label: str, done: int, total: int) -> None:
    """A bar on a terminal, a summary line otherwise (checklist/progress.py)."""
    bar = _bars.get(label) or _bars.setdefault(label, Progress(label, total))
    bar.update(done - bar.done)
    if done >= total:
        _bars.pop(label).close()


def _practice(name: str) -> Practice:
    return Practice.objects.create(name=f"{name} {time.time_ns()}")


def bench_audit(lines: list[str], scale: float) -> None:
    n_bulk = int(100_000 * scale)
    lines.append("## Audit trail (issue 3)\n")

    # 1. Events appended in one transaction: one INSERT statement of n_bulk rows.
    practice = _practice("bench-audit-bulk")
    started = time.perf_counter()
    with transaction.atomic():
        Case.objects.bulk_create(
            [Case(practice=practice, label=f"b{i}", **Case.MINIMAL) for i in range(n_bulk)],
            batch_size=n_bulk,
        )
    elapsed = time.perf_counter() - started
    lines.append(
        f"- {n_bulk:,} inserts in one transaction, each captured and chained: "
        f"{elapsed:.2f} s ({n_bulk / elapsed:,.0f} events/s, including the inserts themselves)"
    )

    # 2. A bulk UPDATE of 10k rows with and without the capture triggers (disabled inside a
    #    transaction that is rolled back: only the owner can do that, never the app role).
    rows = Case.objects.filter(practice=practice).order_by("pk").values_list("pk", flat=True)
    ids = list(rows[: int(10_000 * max(scale, 0.1))])
    timings: dict[str, list[float]] = {"with": [], "without": []}
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE checklist_case")
        cursor.execute("VACUUM ANALYZE checklist_auditevent")
    rounds = 9
    for round_ in range(rounds):
        for mode in ("without", "with"):
            with transaction.atomic(), connection.cursor() as cursor:
                if mode == "without":
                    cursor.execute("ALTER TABLE checklist_case DISABLE TRIGGER USER")
                started = time.perf_counter()
                cursor.execute(
                    "UPDATE checklist_case SET version = version + 1 WHERE id = ANY(%s)", [ids]
                )
                timings[mode].append(time.perf_counter() - started)
                transaction.set_rollback(True)
        _progress("bulk update with/without trigger", round_ + 1, rounds)
    with_t = statistics.median(timings["with"])
    without_t = statistics.median(timings["without"])
    lines.append(
        f"- bulk UPDATE of {len(ids):,} rows, median of {rounds}: without trigger"
        f" {without_t * 1000:.0f} ms, with capture {with_t * 1000:.0f} ms:"
        f" **{with_t / without_t:.2f}x** (target <= 2x)"
    )

    # 3. Four concurrent writers on two practices, committing small transactions.
    practices = [_practice("bench-audit-conc-1"), _practice("bench-audit-conc-2")]
    per_writer = int(2_000 * scale) or 10
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            target = practices[index % 2]
            for start in range(0, per_writer, 10):
                with transaction.atomic():
                    Case.objects.bulk_create(
                        [
                            Case(practice=target, label=f"w{index}-{start + i}", **Case.MINIMAL)
                            for i in range(10)
                        ]
                    )
        except BaseException as error:  # noqa: BLE001 - reported in the output
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    total = 4 * per_writer
    failures = f"; ERRORS: {errors}" if errors else ""
    lines.append(
        f"- 4 concurrent writers on 2 practices, transactions of 10 inserts: {total:,} events in "
        f"{elapsed:.2f} s ({total / elapsed:,.0f} events/s){failures}"
    )

    # 4. Verification speed.
    started = time.perf_counter()
    result = audit.verify_chain(practice.pk)
    elapsed = time.perf_counter() - started
    lines.append(
        f"- audit_verify of one chain: {result.events:,} events in {elapsed:.2f} s "
        f"({result.events / elapsed:,.0f} events/s), result {'OK' if result.ok else 'BROKEN'}"
    )
    lines.append("")


def _timed(client: Any, url: str, runs: int, rendered: bool = False) -> tuple[float, float, int]:
    """Median and p95 of `runs` GETs of `url`, and the queries of one. `rendered`: each with
    the page bodies kept by `fragments` forgotten first, as a first view after a change."""
    times = []
    queries = 0
    for _ in range(runs):
        if rendered:
            caches[fragments.CACHE].clear()
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - started)
        assert response.status_code == 200, (url, response.status_code)
        queries = len(ctx.captured_queries)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], queries


def _client_for(practice: Practice, role: str) -> Any:
    user, _created = get_user_model().objects.get_or_create(username=f"bench-{role}-{practice.pk}")
    Membership.objects.get_or_create(practice=practice, user=user, defaults={"role": role})
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    # Past the code step, as after a correct code (a practice asks physicians for one).
    verify_session(client, user)
    client.get("/cases/")
    return client


def bench_cases(lines: list[str], scale: float) -> None:
    n = int(10_000 * scale) or 100
    lines.append("## Case record (issues 4 and 5)\n")
    practice = _practice("bench-cases")
    services.catalogue_seed(practice=practice)
    started = time.perf_counter()
    seed(practice, n, prefix=f"B{practice.pk}")
    lines.append(
        f"- seeded {n:,} synthetic cases with their rows in {time.perf_counter() - started:.1f} s"
    )
    client = _client_for(practice, Membership.PHYSICIAN)
    runs = 30
    med, p95, q = _timed(client, "/cases/?sort=label", runs)
    lines.append(
        f"- case list, first page: median {med * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, {q} queries"
    )
    deep_label = (
        Case.objects.filter(practice=practice)
        .order_by("label")
        .values_list("label", "pk")[max(n - 60, 0)]
    )
    deep = f"/cases/?sort=label&after={deep_label[0]}|{deep_label[1]}"
    med_d, p95_d, q_d = _timed(client, deep, runs)
    lines.append(
        f"- case list, deep page (row {n - 60:,}): median {med_d * 1000:.1f} ms, p95 {p95_d * 1000:.1f} ms, {q_d} queries ({med_d / med:.2f}x page 1)"
    )
    med_f, p95_f, q_f = _timed(client, "/cases/?complete=no&situation=recurrence", runs)
    lines.append(
        f"- case list filtered (incomplete, recurrence): median {med_f * 1000:.1f} ms, p95 {p95_f * 1000:.1f} ms, {q_f} queries"
    )
    case = Case.objects.filter(practice=practice).first()
    assert case is not None
    big = Case.objects.create(practice=practice, label="BIG", **Case.MINIMAL)
    seed_rows(big, 50)
    pages = (
        ("case page (typical case)", f"/cases/{case.pk}/"),
        (
            "case page with 50 tumours/staging/biomarkers/metastases/lines (250 adverse events)"
            " and 30 finding dates",
            f"/cases/{big.pk}/",
        ),
        ("checklist page of that case", f"/cases/{big.pk}/checklist/"),
    )
    for label, url in pages:
        # Rendered: a first view after a change. Kept: the body from this process's cache
        # (checklist/fragments.py), the rows still read.
        timed = {
            kind: _timed(client, url, runs, rendered=kind == "rendered")
            for kind in ("rendered", "kept")
        }
        lines.append(
            f"- {label}: "
            + "; ".join(
                f"{kind}: median {med * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms"
                for kind, (med, p95, _q) in timed.items()
            )
            + f"; {timed['kept'][2]} queries"
        )
    lines.append("")


def bench_rules(lines: list[str], scale: float) -> None:
    lines.append("## rules.py (issue 6)\n")
    categories = tuple(
        rules.CategoryText(
            code=f"c{i:02d}",
            position=i * 10,
            group="g",
            name=f"Category {i}",
            description="d" * 200,
            source_section="s",
            source_quote="q" * 100,
        )
        for i in range(60)
    )
    catalogue = rules.Catalogue(1, categories)
    facts = rules.CaseFacts(
        tumour_types=("IDC",),
        staging_systems=("uicc_tnm",),
        metastasis_status="present",
        immune_findings=2,
        lines=tuple(
            rules.LineFacts(i, i + 1, ("CH",), "r", "2020-01-01", "", True, "", 2, f"c{i:02d}")
            for i in range(10)
        ),
    )
    runs = 20_000
    started = time.perf_counter()
    for _ in range(runs):
        rules.checklist(facts, catalogue)
    per_case = (time.perf_counter() - started) / runs
    lines.append(
        f"- checklist for 60 categories and 10 linked lines: {per_case * 1e6:.1f} µs per case ({runs:,} runs)"
    )
    lines.append("")


def bench_pdf(lines: list[str], scale: float) -> None:
    lines.append("## Board-note PDF (issue 7)\n")
    practice = _practice("bench-pdf")
    services.catalogue_seed(practice=practice)
    client = _client_for(practice, Membership.PHYSICIAN)
    case = Case.objects.create(practice=practice, label="PDF-1", **Case.MINIMAL)
    seed_rows(case, 3)
    user = Membership.objects.filter(practice=practice).first().user  # type: ignore[union-attr]
    version = services.note_create(
        case=case,
        acting_user=user,
        data={
            "registering_physician": "Dr. Bench",
            "target_board": "Tumorkonferenz",
            "board_type": "postth",
            "question": "Weiteres Vorgehen nach Progress?",
        },
    )
    snapshot = notes.build_snapshot(version, language="de")
    times = []
    for _ in range(10):
        started = time.perf_counter()
        pdf = notes.render_pdf(snapshot, version, base_url="http://localhost/")
        times.append(time.perf_counter() - started)
    lines.append(
        f"- PDF of a typical note ({len(pdf) // 1024} KiB): median {statistics.median(times) * 1000:.0f} ms over 10 renders (goal < 1 s)"
    )
    med, p95, q = _timed(client, f"/notes/{version.note_id}/", 20)
    lines.append(f"- note page: median {med * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, {q} queries")
    lines.append("")


def bench_meetings(lines: list[str], scale: float) -> None:
    """Issue 17: the agenda PDF of a meeting with 30 cases, as an overview and with every
    case's signed note, and the meeting pages, through the views."""
    from django.utils import timezone

    from tests.factories import logged_in, seed_meeting

    lines.append("## Board meetings (issue 17)\n")
    practice = _practice("bench-meetings")
    services.catalogue_seed(practice=practice)
    user = get_user_model().objects.create_user(username=f"bench-meetings-{practice.pk}")
    Membership.objects.create(practice=practice, user=user, role=Membership.PHYSICIAN)
    n = 30
    started = time.perf_counter()
    meeting = seed_meeting(practice, user, n, day=timezone.localdate())
    lines.append(
        f"- seeded a meeting of {n} cases with signed notes in {time.perf_counter() - started:.1f} s"
        f" (load average then: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; the PDF"
        " timings grow with it)"
    )
    client = logged_in(user)
    base = f"/meetings/{meeting.pk}"
    runs = max(int(10 * scale), 3)
    for what, url, goal, count in [
        ("agenda PDF, overview", f"{base}/agenda.pdf", "goal < 2 s", runs),
        ("agenda PDF with every case's note", f"{base}/agenda.pdf?notes=1", "goal < 10 s", 5),
    ]:
        med, p95, q = _timed(client, url, count)
        size = len(client.get(url).content) // 1024
        lines.append(
            f"- {what}, {n} cases ({size} KiB): median {med * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"
            f" over {count} renders, {q} queries ({goal})"
        )
        print(f"  {what}: median {med:.2f} s")
    for what, url in [("agenda page", f"{base}/"), ("meeting mode", f"{base}/run/")]:
        med, p95, q = _timed(client, url, 20)
        lines.append(
            f"- {what}, {n} cases: median {med * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, {q} queries"
        )
    lines.append("")


def bench_trail(lines: list[str], scale: float) -> None:
    # The measured practice holds 1M events (its trail, history and export are what is timed);
    # 19 more practices hold 10k each, so the table is shared as in production.
    big = int(1_000_000 * scale) or 10_000
    small = int(10_000 * scale) or 1_000
    lines.append("## Audit browsing (issue 8)\n")
    practices = [_practice(f"bench-trail-{i}") for i in range(20)]
    target = practices[0]
    case = Case.objects.create(practice=target, label="TRAIL-1", **Case.MINIMAL)
    sizes = {p.pk: (big if p is target else small) for p in practices}
    total = sum(sizes.values())
    chunk = 10_000
    started = time.perf_counter()
    done = 0
    with connection.cursor() as cursor:
        for practice in practices:
            for offset in range(0, sizes[practice.pk], chunk):
                size = min(chunk, sizes[practice.pk] - offset)
                # Every 100th event of the measured practice belongs to one case: 10k events.
                case_ids = [
                    case.pk if practice is target and (offset + i) % 100 == 0 else None
                    for i in range(size)
                ]
                cursor.execute(
                    "SELECT audit_append_rows('change', 'checklist_case', 'UPDATE', %s::jsonb,"
                    " %s, %s, %s, %s, %s, %s)",
                    [
                        '{"user_id": 1, "user_name": "bench", "path": "/bench"}',
                        [practice.pk] * size,
                        [str(i) for i in range(size)],
                        case_ids,
                        ['{"version": 1}'] * size,
                        ['{"version": 2}'] * size,
                        [None] * size,
                    ],
                )
                done += size
                _progress("seeding audit events", done, total)
    elapsed = time.perf_counter() - started
    lines.append(
        f"- seeded {done:,} events over 20 practices ({big:,} in the measured one) in {elapsed:.1f} s ({done / elapsed:,.0f} events/s)"
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE checklist_auditevent")
    client = _client_for(target, Membership.PRACTICE_ADMIN)
    med, p95, q = _timed(client, "/audit/", 30)
    lines.append(
        f"- trail, first page: median {med * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, {q} queries"
    )
    deep_seq = (
        AuditEvent.objects.filter(practice_id=target.pk)
        .order_by("seq")
        .values_list("seq", flat=True)[100]
    )
    med_d, p95_d, q_d = _timed(client, f"/audit/?before={deep_seq}", 30)
    lines.append(
        f"- trail, deep page (before seq {deep_seq}): median {med_d * 1000:.1f} ms, p95 {p95_d * 1000:.1f} ms, {q_d} queries ({med_d / med:.2f}x first)"
    )
    history_events = AuditEvent.objects.filter(practice_id=target.pk, case_id=case.pk).count()
    med_h, p95_h, q_h = _timed(client, f"/cases/{case.pk}/history/", 30)
    lines.append(
        f"- case history of a case with {history_events:,} events: median {med_h * 1000:.1f} ms, p95 {p95_h * 1000:.1f} ms, {q_h} queries"
    )

    def export(client: Any, url: str) -> tuple[float, float, int, float]:
        tracemalloc.start()
        started = time.perf_counter()
        response = client.get(url)
        first = None
        rows = 0
        for chunk_ in response.streaming_content:
            if first is None:
                first = time.perf_counter() - started
            rows += chunk_.count(b"\n")
        elapsed = time.perf_counter() - started
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return first or 0.0, elapsed, rows - 1, peak / 1e6

    # A 10k-row export for comparison: one table's events in another practice.
    small = _client_for(practices[1], Membership.PRACTICE_ADMIN)
    ttfb_s, _el_s, rows_s, peak_s = export(small, "/audit/export.csv?date_from=2000-01-01")
    ttfb, el, rows, peak = export(client, "/audit/export.csv")
    lines.append(
        f"- CSV export of {rows:,} rows: first byte after {ttfb * 1000:.0f} ms, {rows / el:,.0f} rows/s, peak Python memory (tracemalloc) {peak:.2f} MB"
    )
    lines.append(
        f"- CSV export of {rows_s:,} rows (another practice): first byte after {ttfb_s * 1000:.0f} ms, peak {peak_s:.2f} MB (difference {peak - peak_s:+.2f} MB)"
    )
    started = time.perf_counter()
    result = audit.verify_chain(target.pk)
    elapsed = time.perf_counter() - started
    lines.append(
        f"- audit_verify of one practice: {result.events:,} events in {elapsed:.2f} s ({'OK' if result.ok else 'BROKEN'})"
    )
    lines.append("")


class _Counter:
    """What the browser did, from Playwright's events: full page loads (the `load` event of a
    document), form submissions (POST requests, htmx or not) and htmx requests (`HX-Request`)."""

    def __init__(self, page: Any) -> None:
        self.loads = self.posts = self.htmx = self.htmx_posts = 0
        page.on("load", lambda _page: self._load())
        page.on("request", self._request)

    def _load(self) -> None:
        self.loads += 1

    def _request(self, request: Any) -> None:
        htmx = request.headers.get("hx-request") == "true"
        if request.method == "POST":
            self.posts += 1
            self.htmx_posts += htmx
        if htmx:
            self.htmx += 1


def _effort_scenario(page: Any, username: str, password: str, label: str) -> dict[str, str]:
    """A new user records a metastatic breast cancer case with three prior lines, as one would
    on the case page, then builds its checklist. Returns the factor states at the end."""
    from playwright.sync_api import expect

    def field(name: str, scope: Any = page) -> Any:
        return scope.get_by_label(re.compile(rf"^\s*{re.escape(name)}\s*\*?\s*$"))

    def save(section: Any, another: bool = False) -> None:
        name = "Save and add another" if another else "Save"
        section.get_by_role("button", name=name, exact=True).click()

    page.goto("/login/")
    field("Username").fill(username)
    field("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/cases/")
    page.get_by_role("link", name="New case").click()
    field("Pseudonymous label").fill(label)
    field("Year of birth").fill("1961")
    field("Sex").select_option("female")
    field("Tumour situation").select_option("metastatic_progression")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/cases/\d+/$"))

    tumours = page.locator("#tumours")
    tumours.get_by_role("link", name="Add primary tumour").click()
    field("Tumour type (OncoTree)").press_sequentially("invasive ductal", delay=20)
    page.get_by_role("button", name=re.compile("Breast Invasive Ductal Carcinoma")).click()
    field("Laterality").select_option("left")
    field("Date of diagnosis").fill("2019-03-01")
    save(tumours)
    expect(tumours.locator("tbody tr")).to_have_count(1)

    staging = page.locator("#staging")
    staging.get_by_role("link", name="Add staging record").click()
    field("Date", staging).fill("2019-03-20")
    field("Kind", staging).select_option("pathological")
    field("System", staging).select_option("uicc_tnm")
    field("TNM edition", staging).select_option("8")
    for letter, prefix, value in [("T", "p", "2"), ("N", "p", "1a"), ("M", "c", "0")]:
        field(f"{letter} prefix", staging).select_option(prefix)
        field(letter, staging).select_option(value)
    save(staging)
    expect(staging.locator("tbody tr")).to_have_count(1)

    metastases = page.locator("#metastases")
    metastases.get_by_role("link", name="Add metastasis").click()
    for n, (site, detected) in enumerate([("OSS", "2022-05-01"), ("HEP", "2023-02-01")], 1):
        field("Site", metastases).select_option(site)
        field("Detected on", metastases).fill(detected)
        field("Timing", metastases).select_option("metachronous")
        save(metastases, another=n < 2)
        expect(metastases.locator("tbody tr")).to_have_count(n)

    biomarkers = page.locator("#biomarkers")
    biomarkers.get_by_role("link", name="Add biomarker result").click()
    for n, (marker, result) in enumerate(
        [("ER", "positive"), ("PR", "positive"), ("HER2", "0")], 1
    ):
        field("Marker", biomarkers).fill(marker)
        field("Kind", biomarkers).select_option("somatic")
        field("Status", biomarkers).select_option("result")
        field("Categorical result", biomarkers).fill(result)
        save(biomarkers, another=n < 3)
        expect(biomarkers.locator("tbody tr")).to_have_count(n)

    therapy = page.locator("#therapy")
    therapy.get_by_role("link", name="Add therapy line").click()
    lines = [
        (["Hormone therapy"], "Letrozole", "2019-05-01", "2022-05-15", "Stopped for progression"),
        (
            ["Targeted substances"],
            "Fulvestrant + Palbociclib",
            "2022-06-01",
            "2023-02-01",
            "Stopped for side effects",
        ),
        (["Chemotherapy"], "Capecitabine", "2023-03-01", "", ""),
    ]
    for n, (types, regimen, start, end, reason) in enumerate(lines, 1):
        field("Line number", therapy).fill(str(n))
        for therapy_type in types:
            field(therapy_type, therapy).check()
        field("Regimen", therapy).fill(regimen)
        field("Position in the course of therapy", therapy).select_option(
            "first_advanced" if n == 1 else "later_advanced"
        )
        field("Start", therapy).fill(start)
        if end:
            field("End", therapy).fill(end)
            field("End reason", therapy).select_option(label=reason)
        else:
            field("Ongoing", therapy).check()
        save(therapy, another=n < 3)
        expect(therapy.get_by_test_id("therapy-line")).to_have_count(n)
    line_2 = therapy.get_by_test_id("therapy-line").nth(1)
    line_2.get_by_role("link", name="Add adverse event").click()
    field("Term", line_2).fill("Neutrophil count decreased")
    field("CTCAE version", line_2).select_option("5.0")
    field("Grade", line_2).select_option("3")
    field("Led to stopping the therapy", line_2).check()
    field("Onset", line_2).fill("2023-01-20")
    save(line_2)
    expect(line_2.locator("tr[id^=event-]")).to_have_count(1)

    performance = page.locator("#performance")
    performance.get_by_role("link", name="Add performance status").click()
    field("Assessed on", performance).fill("2024-05-02")
    field("ECOG", performance).select_option("1")
    save(performance)
    expect(performance.locator("tbody tr")).to_have_count(1)

    immune = page.locator("#immune")
    immune.get_by_role("link", name="Add findings").click()
    field("Date", immune).fill("2024-05-02")
    field("Neutrophils", immune).fill("2.1")
    field("Lymphocytes", immune).fill("0.9")
    save(immune)
    expect(immune.get_by_test_id("immune-finding")).to_have_count(1)

    states = {
        element.get_attribute("data-group"): element.get_attribute("data-state")
        for element in page.locator("[data-group]").all()
    }
    page.get_by_role("link", name="Therapy categories to consider").click()
    page.wait_for_url("**/checklist/")
    for card in page.get_by_test_id("category").all()[:2]:
        card.get_by_label("raise at board").check()
        expect(card.locator("[data-saved], [data-testid=set-by]").first).to_contain_text(
            re.compile(r"\S")
        )
    page.wait_for_load_state("networkidle")
    return {k: v for k, v in states.items() if k and v}


def bench_effort(lines: list[str], scale: float) -> None:
    """Issue 13's effort target: the case of the issue recorded and its checklist built in a
    real browser against a live server on a loopback port, counting what the browser did."""
    import os

    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.test.testcases import LiveServerThread
    from django.test.utils import override_settings

    from tests.browser.conftest import ARGS, CHROMIUM

    lines.append("## Effort to record a case (issue 13)\n")
    if not Path(CHROMIUM).exists():
        lines.append(f"- skipped: Chromium not found at {CHROMIUM}\n")
        return
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls here are plain
    # blocking calls all the same (as in the browser tests).
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    practice = _practice("bench-effort")
    services.catalogue_seed(practice=practice)
    username, password = f"bench-effort-{practice.pk}", "bench-Effort-pass-9"
    user = get_user_model().objects.create_user(username=username, password=password)
    Membership.objects.create(practice=practice, user=user, role=Membership.PHYSICIAN)
    server = LiveServerThread("127.0.0.1", StaticFilesHandler, connections_override={}, port=0)
    server.daemon = True
    with override_settings(ALLOWED_HOSTS=["127.0.0.1"]):
        server.start()
        server.is_ready.wait()
        if server.error:
            raise server.error
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=ARGS
                )
                context = browser.new_context(
                    base_url=f"http://127.0.0.1:{server.port}", locale="en-GB"
                )
                page = context.new_page()
                page.set_default_timeout(15_000)
                errors: list[str] = []
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                counter = _Counter(page)
                started = time.perf_counter()
                states = _effort_scenario(page, username, password, f"EFFORT-{practice.pk}")
                elapsed = time.perf_counter() - started
                browser.close()
        finally:
            server.terminate()
            server.join()
    case = Case.objects.get(practice=practice)
    rows = {
        "tumours": case.tumours.count(),
        "staging": case.staging_records.count(),
        "metastases": case.metastases.count(),
        "biomarkers": case.biomarkers.count(),
        "lines": case.therapy_lines.count(),
        "adverse events": sum(line.events.count() for line in case.therapy_lines.all()),
        "performance": case.performance.count(),
        "findings": case.immune_findings.count(),
        "checklist items set": sum(c.items.count() for c in Checklist.objects.filter(case=case)),
    }
    recorded = sum(1 for state in states.values() if state != "not_recorded")
    ok = counter.posts <= 20 and counter.loads <= 5
    lines.append(
        f"- scenario (Playwright, Chromium, en-GB, {time.strftime('%Y-%m-%d')}): log in, create"
        " the case, record a tumour, one staging, two metastases, three biomarkers, three lines"
        " with one adverse event, performance status, one set of findings on the case page,"
        " open the checklist and set two categories to “raise at board”"
    )
    lines.append(
        f"- **{counter.posts} submissions** (POST; {counter.htmx_posts} of them by htmx) and"
        f" **{counter.loads} full page loads** (target: at most 20 and 5:"
        f" {'met' if ok else 'NOT MET'}); {counter.htmx} htmx requests in all (opening forms,"
        f" the type-ahead, saves); wall time of the script {elapsed:.1f} s"
    )
    lines.append(
        "- the full page loads: the login page, the case list, the new-case form, the case page,"
        " the checklist; every row is added in place (before: each row its own page and a"
        " redirect, about 25-29 submissions and 40 page loads for the same case)"
    )
    lines.append(
        f"- recorded: {', '.join(f'{what} {n}' for what, n in rows.items())};"
        f" factor groups documented: {recorded} of {len(states)}"
        + (f"; console errors: {len(errors)}" if errors else "")
    )
    lines.append("")


def _fhir_bundle(entries: int) -> bytes:
    """The Jenny M example with its ECOG, TNM, tumour-marker and genomic-variant observations
    and its medication requests repeated up to `entries` (each copy on its own date; the
    requests among sixteen consecutive copies share a care plan, as the cycles of a regimen
    would: one systemic episode each)."""
    import json

    from tests.factories import JENNY_M_COLLECTION

    bundle = json.loads(JENNY_M_COLLECTION.read_text())
    parts = ("ecog", "tnm", "tumor-marker", "genomic-variant", "medication-request")
    repeatable = [
        e for e in bundle["entry"] if any(part in e["resource"].get("id", "") for part in parts)
    ]
    number = 0
    while len(bundle["entry"]) < entries:
        template = repeatable[number % len(repeatable)]
        copy = json.loads(json.dumps(template))
        copy["resource"]["id"] = f"{copy['resource']['id']}-{number}"
        copy["fullUrl"] = f"urn:uuid:bench-{number}"
        day = 1 + number % 28
        when = f"2018-{1 + number // 28 % 12:02d}-{day:02d}"
        if copy["resource"]["resourceType"] == "MedicationRequest":
            copy["resource"]["authoredOn"] = when
            copy["resource"]["basedOn"] = [{"reference": f"CarePlan/plan-{number // 16}"}]
            for dosage in copy["resource"].get("dosageInstruction") or []:
                dosage.pop("timing", None)
        else:
            copy["resource"]["effectiveDateTime"] = when
        bundle["entry"].append(copy)
        number += 1
    return json.dumps(bundle).encode()


def bench_fhir(lines: list[str], scale: float) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.utils import timezone

    from checklist import fhir_import
    from checklist.models import CodeMapping, FhirImportPreview

    n = max(int(1000 * scale), 60)
    lines.append("## FHIR import (issue 18)\n")
    practice = _practice("bench-fhir")
    practice.second_factor_for_physicians = False  # the bench client has no authenticator
    practice.save(update_fields=["second_factor_for_physicians"])
    services.catalogue_seed(practice=practice)
    client = _client_for(practice, Membership.PHYSICIAN)
    user = get_user_model().objects.get(username=f"bench-{Membership.PHYSICIAN}-{practice.pk}")
    # The primary's SNOMED code is in the practice's code map: the preview asks nothing.
    CodeMapping.objects.create(
        practice=practice,
        source_system="http://snomed.info/sct",
        source_code="353431000119107",
        source_version="http://snomed.info/sct/900000000000207008",
        target_system="oncotree",
        target_code="IDC",
        mapped_by=user,
        mapped_at=timezone.now(),
    )
    # ... and so are the therapy types of its medications' RxNorm codes.
    CodeMapping.objects.bulk_create(
        CodeMapping(
            practice=practice,
            source_system="http://www.nlm.nih.gov/research/umls/rxnorm",
            source_code=code,
            target_system="mii:therapie-typ",
            target_code=kind,
            mapped_by=user,
            mapped_at=timezone.now(),
        )
        for code, kind in (("3639", "CH"), ("3002", "CH"), ("56946", "CH"), ("84857", "HO"))
    )
    raw = _fhir_bundle(n)
    pure, previews, commits, queries = [], [], [], 0
    for run in range(5):
        started = time.perf_counter()
        data = fhir_import.read_bundle(raw, max_bytes=10_000_000, max_entries=5000)
        fhir_import.resolve(fhir_import.map_bundle(data), practice_id=practice.pk)
        pure.append(time.perf_counter() - started)
        started = time.perf_counter()
        response = client.post("/import/fhir/", {"bundle_file": SimpleUploadedFile("b.json", raw)})
        page = client.get(response["Location"])
        previews.append(time.perf_counter() - started)
        assert page.status_code == 200, page.status_code
        answers = {"label": f"FHIR-{run}", "year_of_birth": "1965", "sex": "female"}
        answers |= {"situation": "first_diagnosis", "laterality_t2": "left"}
        mapped = FhirImportPreview.objects.filter(user=user).latest("created_at").data
        answers |= {f"episode_{i['key']}": i["episode"] for i in mapped["therapy_items"]}
        answers |= {
            f"line_{e['key']}": str(1 + number % 99)
            for number, e in enumerate(mapped["episodes"])
            if e["kind"] == "systemic"
        }
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            done = client.post(response["Location"], answers)
            commits.append(time.perf_counter() - started)
        assert done.status_code == 302, done.status_code
        queries = len(ctx.captured_queries)
    lines.append(
        f"- {n:,}-entry bundle ({len(raw) / 1e6:.1f} MB): read, validate (R4B) and map:"
        f" median {statistics.median(pure) * 1000:.0f} ms"
    )
    lines.append(
        f"- upload and preview page of it: median {statistics.median(previews) * 1000:.0f} ms"
        " (goal under 2 s)"
    )
    lines.append(
        f"- confirmation (the case and {n - 41:,}+ rows in one transaction):"
        f" median {statistics.median(commits) * 1000:.0f} ms, {queries} queries"
    )
    big = _fhir_bundle(int(2800 * min(scale, 1.0)) or 60)  # just under the 10 MB limit
    tracemalloc.start()
    started = time.perf_counter()
    try:
        fhir_import.map_bundle(fhir_import.read_bundle(big, max_bytes=10_000_000, max_entries=5000))
    except fhir_import.BundleError as error:
        lines.append(f"- large bundle refused: {error.message}")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    lines.append(
        f"- {len(big) / 1e6:.1f} MB bundle: read and mapped in"
        f" {time.perf_counter() - started:.1f} s under tracemalloc (which slows it several"
        f" times), peak Python memory {peak / 1e6:.0f} MB"
    )
    FhirImportPreview.objects.filter(user=user).delete()
    lines.append("")


def bench_fhir_export(lines: list[str], scale: float) -> None:
    import json

    from checklist import fhir_export
    from checklist.record import CaseRecord
    from checklist.second_factor import REAUTH_SESSION_KEY

    lines.append("## FHIR export (issue 18)\n")
    practice = _practice("bench-fhir-export")
    practice.second_factor_for_physicians = False  # the bench client has no authenticator
    practice.save(update_fields=["second_factor_for_physicians"])
    client = _client_for(practice, Membership.PHYSICIAN)
    session = client.session
    session[REAUTH_SESSION_KEY] = time.time()  # an export asks for a recent password
    session.save()
    rows = max(int(50 * scale), 5)
    case = Case.objects.create(practice=practice, label="FHIR-OUT-1", **Case.MINIMAL)
    seed_rows(case, rows)
    times, bundle = [], {}
    for _ in range(10):
        started = time.perf_counter()
        bundle = fhir_export.case_bundle(CaseRecord.load(Case.objects.get(pk=case.pk)))
        times.append(time.perf_counter() - started)
    size = len(json.dumps(bundle))
    lines.append(
        f"- case with {rows} rows of each kind ({rows * 5} adverse events):"
        f" {len(bundle['entry']):,} resources, {size / 1e6:.1f} MB; built and validated"
        f" (R4B models and our profile checks) in median {statistics.median(times) * 1000:.0f} ms"
    )
    med, p95, q = _timed(client, f"/cases/{case.pk}/fhir.json", 10)
    lines.append(
        f"- the download of it: median {med * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, {q} queries"
    )
    lines.append("")


SECTIONS: dict[str, Callable[[list[str], float], None]] = {
    "audit": bench_audit,
    "cases": bench_cases,
    "rules": bench_rules,
    "pdf": bench_pdf,
    "meetings": bench_meetings,
    "trail": bench_trail,
    "effort": bench_effort,
    "fhir": bench_fhir,
    "fhir-export": bench_fhir_export,
}


def _sections(report: str) -> tuple[str, dict[str, str]]:
    """The report's head and its "## " sections by heading, in order."""
    head, *blocks = re.split(r"(?m)^(?=## )", report)
    return head, {block.splitlines()[0]: block for block in blocks}


def _merged(old: str, new: str) -> str:
    """The old report with the sections of a partial run replaced (or added at the end)."""
    head, sections = _sections(old)
    sections.update(_sections(new)[1])
    return (
        head
        + "".join(
            block if block.endswith("\n\n") else block + "\n" for block in sections.values()
        ).rstrip("\n")
        + "\n"
    )


class Command(BaseCommand):
    help = "Run the benchmarks and write docs/benchmarks.md."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--only", choices=sorted(SECTIONS), action="append")
        parser.add_argument("--scale", type=float, default=1.0, help="shrink for a quick run")
        parser.add_argument("--no-write", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        lines = [
            "# Benchmarks\n",
            f"`make bench` on {time.strftime('%Y-%m-%d')}, scale {options['scale']}, "
            f"database {connection.vendor} {getattr(connection, 'pg_version', '?')}."
            " Machine: 2 cores.\n",
        ]
        for name in options["only"] or list(SECTIONS):
            print(f"{name}:")
            SECTIONS[name](lines, options["scale"])
        report = "\n".join(lines) + "\n"
        self.stdout.write(report)
        if not options["no_write"]:
            REPORT.parent.mkdir(exist_ok=True)
            if options["only"] and REPORT.exists():  # a partial run keeps the other sections
                report = _merged(REPORT.read_text(), report)
            REPORT.write_text(report)
