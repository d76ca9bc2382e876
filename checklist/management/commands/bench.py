"""`make bench`: measures what DESIGN.md and the issues set targets for, on a scratch database.

Writes a Markdown report to docs/benchmarks.md (and prints it). Every section seeds its own
practices, so it can run against a database that already holds data.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, connections, transaction

from checklist import audit
from checklist.models import Case, Practice

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


SECTIONS: dict[str, Callable[[list[str], float], None]] = {"audit": bench_audit}


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
