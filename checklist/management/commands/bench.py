"""`make bench`: measures what DESIGN.md and the issues set targets for, on a scratch database.

Writes a Markdown report to docs/benchmarks.md (and prints it). Every section seeds its own
practices, so it can run against a database that already holds data.
"""

from __future__ import annotations

import statistics
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from checklist import audit, notes, rules, services
from checklist.management.commands.seed_cases import seed
from checklist.models import AuditEvent, Case, Membership, Practice
from tests.test_queries import seed_rows

REPORT = Path(settings.BASE_DIR) / "docs" / "benchmarks.md"


def _progress(label: str, done: int, total: int) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    print(f"\r  {label:<38} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="")
    if done >= total:
        print()


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


def _timed(client: Any, url: str, runs: int) -> tuple[float, float, int]:
    times = []
    queries = 0
    for _ in range(runs):
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
    med_c, p95_c, q_c = _timed(client, f"/cases/{case.pk}/", runs)
    lines.append(
        f"- case page (typical case): median {med_c * 1000:.1f} ms, p95 {p95_c * 1000:.1f} ms, {q_c} queries"
    )
    big = Case.objects.create(practice=practice, label="BIG", **Case.MINIMAL)
    seed_rows(big, 50)
    med_b, p95_b, q_b = _timed(client, f"/cases/{big.pk}/", runs)
    lines.append(
        f"- case page with 50 tumours/staging/biomarkers/metastases/lines (250 adverse events) and 30 finding dates: median {med_b * 1000:.1f} ms, p95 {p95_b * 1000:.1f} ms, {q_b} queries"
    )
    med_k, p95_k, q_k = _timed(client, f"/cases/{big.pk}/checklist/", runs)
    lines.append(
        f"- checklist page of that case: median {med_k * 1000:.1f} ms, p95 {p95_k * 1000:.1f} ms, {q_k} queries"
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


SECTIONS: dict[str, Callable[[list[str], float], None]] = {
    "audit": bench_audit,
    "cases": bench_cases,
    "rules": bench_rules,
    "pdf": bench_pdf,
    "trail": bench_trail,
}


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
            REPORT.write_text(report)
