"""`make loadtest`: the six operations figures against the running `make cluster`.

Headless locust (ops/locustfile.py), every run bounded in users and seconds, every address on
127.0.0.1. Scenarios: throughput (pages against /ping, alternating), concurrent editors (with
the audit trail read from the replica alongside), database restart under load, an app server
killed under load, soak. Checks read the primary directly. `--only NAME,...` picks scenarios;
`--write-docs` replaces the "Operations" section of docs/benchmarks.md. Exits 1 when a check
fails (lost updates, 5xx outside an outage, a broken chain).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_DIR = Path(os.environ.get("CLUSTER_DIR", ROOT / "var" / "cluster"))
PROXY = f"http://127.0.0.1:{os.environ.get('CLUSTER_PROXY_PORT', '8100')}"
PG_PORT = os.environ.get("CLUSTER_PG_PORT", "55432")
REPLICA_PORT = os.environ.get("CLUSTER_REPLICA_PORT", "55433")
DB = os.environ.get("CLUSTER_DB", "oncoboard")
LOCUST = str(ROOT / ".venv" / "bin" / "locust")
CLUSTER = ["bash", str(ROOT / "ops" / "cluster.sh")]

os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{PG_PORT}/{DB}"
os.environ.pop("DATABASE_REPLICA_URL", None)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
sys.path.insert(0, str(ROOT))

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from checklist import audit  # noqa: E402
from checklist.models import AuditEvent, ChecklistItem, ImmuneFinding, StagingRecord  # noqa: E402

SETUP = json.loads((CLUSTER_DIR / "loadtest.json").read_text())
failures: list[str] = []
results: dict[str, Any] = {}  # the figures, for --json (ops/test_faults.py reads them)


def locust(
    classes: list[str], users: int, seconds: int, log: Path | None = None, **env: str
) -> dict[str, dict[str, float]]:
    """One headless locust run; its stats by request name."""
    prefix = Path(tempfile.mkdtemp(prefix="locust-")) / "run"
    cmd = [
        LOCUST,
        "-f",
        str(ROOT / "ops" / "locustfile.py"),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{seconds}s",
        "--host",
        PROXY,
        "--csv",
        str(prefix),
        "--only-summary",
        "--loglevel",
        "ERROR",
        "--stop-timeout",
        "5",
        *classes,
    ]
    run_env = {**os.environ, "LOADTEST_SETUP": str(CLUSTER_DIR / "loadtest.json"), **env}
    if log is not None:
        run_env["LOADTEST_LOG"] = str(log)
    subprocess.run(
        cmd,
        env=run_env,
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=seconds + 60,
    )
    stats: dict[str, dict[str, float]] = {}
    with open(f"{prefix}_stats.csv") as handle:
        for row in csv.DictReader(handle):
            stats[row["Name"]] = {
                "count": float(row["Request Count"]),
                "failures": float(row["Failure Count"]),
                "rps": float(row["Requests/s"]),
                "median": float(row["Median Response Time"] or 0),
                "p95": float(row["95%"] or 0),
            }
    return stats


def log_lines(path: Path) -> list[dict[str, Any]]:
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if path.exists()
        else []
    )


def healthz() -> dict[str, Any]:
    with urllib.request.urlopen(f"{PROXY}/healthz", timeout=5) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


def app_pids() -> dict[str, int]:
    pids = {}
    for n in (1, 2):
        f = CLUSTER_DIR / "run" / f"app{n}.pid"
        if f.exists():
            pids[f"app{n}"] = int(f.read_text())
    return pids


def workers() -> list[int]:
    found = []
    for pid in app_pids().values():
        children = Path(f"/proc/{pid}/task/{pid}/children")
        if children.exists():
            found += [int(p) for p in children.read_text().split()]
    return found


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def server_connections() -> int:
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND usename = 'oncoboard_app'",
            [DB],
        )
        return int(cursor.fetchone()[0])


def check_saves(lines: list[dict[str, Any]], findings_before: int) -> tuple[int, int, str]:
    """Accepted saves against the trail and the final state: (accepted, lost, detail)."""
    connection.close()
    accepted = [line for line in lines if line.get("save") and line["status"] == 302]
    lost = 0
    seq_of: dict[str, int] = {}
    for line in accepted:
        first = (
            AuditEvent.objects.filter(
                practice_id=SETUP["practice"], request_id=line["rid"], kind="change"
            )
            .order_by("seq")
            .values_list("seq", flat=True)
            .first()
        )
        if first is None:
            lost += 1
        else:
            seq_of[line["rid"]] = first
    ordered = sorted(
        (line for line in accepted if line["rid"] in seq_of), key=lambda line: seq_of[line["rid"]]
    )
    wrong = []
    last_staging: dict[int, str] = {}
    last_item: dict[tuple[int, int], str] = {}
    for line in ordered:
        save = line["save"]
        if save["kind"] == "staging":
            last_staging[save["case"]] = save["value"]
        elif save["kind"] == "checklist":
            last_item[(save["case"], save["category"])] = save["value"]
    for target in SETUP["editor_cases"]:
        if target["case"] in last_staging:
            stored = StagingRecord.objects.get(pk=target["staging"]).t_category
            if stored != last_staging[target["case"]]:
                wrong.append(
                    f"staging of case {target['case']}: {stored} != {last_staging[target['case']]}"
                )
    for (case, category), value in last_item.items():
        stored = ChecklistItem.objects.get(checklist__case_id=case, category_id=category).status
        if stored != value:
            wrong.append(f"checklist item {case}/{category}: {stored} != {value}")
    findings = sum(1 for line in accepted if line["save"]["kind"] == "finding")
    made = findings_count() - findings_before
    if made != findings:
        wrong.append(f"findings: {made} rows for {findings} accepted saves")
    return len(accepted), lost + len(wrong), "; ".join(wrong)


def findings_count() -> int:
    return ImmuneFinding.objects.filter(
        case_id__in=[t["case"] for t in SETUP["editor_cases"]]
    ).count()


def chain_ok() -> bool:
    connection.close()
    return audit.verify_chain(SETUP["practice"]).ok


def logged_in(log: Path, users: int, limit: float = 90.0) -> None:
    """Waits until the locust users have logged in (a password hash each: seconds of CPU on
    this machine), so that a fault hits a steady load, not the log-in burst."""
    until = time.time() + limit
    while time.time() < until:
        if sum(1 for line in log_lines(log) if line["name"] == "login") >= users:
            return
        time.sleep(0.5)


def errors_of(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        line for line in lines if line["status"] >= 500 or line["status"] == 0 or line.get("error")
    ]


class Sampler(threading.Thread):
    """Samples, every `every` seconds, backends waiting on the audit chain's advisory lock and
    the replica lag reported by /healthz."""

    def __init__(self, every: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.every, self.stop, self.waiting = every, threading.Event(), 0
        self.lags: list[float] = []
        self.samples = 0

    def run(self) -> None:
        import psycopg

        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            n = 0
            while not self.stop.is_set():
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory'"
                ).fetchone()
                self.waiting += row[0] if row else 0
                self.samples += 1
                n += 1
                if n % 5 == 0:
                    with contextlib.suppress(OSError):
                        self.lags.append(healthz().get("replica", {}).get("lag_seconds", -1))
                time.sleep(self.every)

    def lock_seconds(self) -> float:
        return self.waiting * self.every


# --- scenarios ---------------------------------------------------------------------------


def sessions(count: int) -> list[str]:
    """Logged-in sessions of the load test's physicians, made here (no password hash in the
    measured requests)."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    made = []
    for username in SETUP["physicians"][:count]:
        client = Client()
        client.force_login(
            get_user_model().objects.get(username=username),
            backend="django.contrib.auth.backends.ModelBackend",
        )
        made.append(client.cookies["sessionid"].value)
    return made


def throughput(out: list[str], seconds: int, users: int) -> None:
    out.append(
        f"1. **Throughput** through HAProxy, 2 app servers x 2 workers, {users} locust users without wait, phases of {seconds} s alternating /ping and the page (ping, page, ping, page):"
    )
    medians = {}
    cookies = json.dumps(sessions(users))
    for page, label in (
        ("case", "case page (typical case)"),
        ("checklist", "checklist page"),
        ("list", "case list"),
        ("big", "case page, 10x the rows"),
    ):
        ping_rps, page_rps, page_median = [], [], []
        for _ in range(2):
            ping_rps.append(locust(["PingUser"], users, seconds)["/ping"]["rps"])
            stats = locust(
                ["PageUser"], users, seconds, LOADTEST_PAGE=page, LOADTEST_SESSIONS=cookies
            )[page]
            if stats["failures"]:
                failures.append(f"throughput {page}: {stats['failures']:.0f} failures")
            page_rps.append(stats["rps"])
            page_median.append(stats["median"])
        ping, rps = statistics.mean(ping_rps), statistics.mean(page_rps)
        medians[page] = rps
        out.append(
            f"   - {label}: {rps:.1f} req/s against /ping {ping:.0f} req/s: **{rps / ping:.3f}x** (median latency {statistics.mean(page_median):.0f} ms under this load)"
        )
    out.append(
        f"   - a case with 10x the rows costs **{medians['case'] / medians['big']:.2f}x** the time of a typical case (ratio of their throughputs)"
    )


def editors(out: list[str], seconds: int) -> None:
    log = Path(tempfile.mkdtemp(prefix="editors-")) / "requests.jsonl"
    before = findings_count()
    sampler = Sampler()
    sampler.start()
    stats = locust(["EditorUser", "AdminReader"], 21, seconds, log)
    sampler.stop.set()
    sampler.join()
    lines = log_lines(log)
    accepted, lost, detail = check_saves(lines, before)
    saves = [line for line in lines if line.get("save")]
    conflicts = sum(1 for line in saves if line["status"] in (200, 409))
    server_errors = len(errors_of(lines))
    ok = chain_ok()
    appending = sum(
        s["count"] * s["median"] / 1000
        for name, s in stats.items()
        if name
        in (
            "open form (editor)",
            "checklist (editor)",
            "edit staging",
            "add finding",
            "set checklist status",
        )
    )
    out.append(
        f"2. **Concurrent editors**: 20 physicians for {seconds} s on 5 cases (edit a staging record, add a finding, set a checklist status; read-modify-write through the forms): {len(saves)} saves sent, **{accepted} accepted, {lost} lost**{' (' + detail + ')' if detail else ''}, {conflicts} answered as conflicts (409 page or the checklist's stale message), **{server_errors} 5xx/connection errors**, chain verifies: **{'yes' if ok else 'NO'}**. Waiting on the per-practice audit lock (sampled every 0.1 s in pg_stat_activity): about {sampler.lock_seconds():.1f} s of backend time, against about {appending:.0f} s spent in those requests (median x count)."
    )
    results["editors"] = {
        "saves": len(saves),
        "accepted": accepted,
        "lost": lost,
        "conflicts": conflicts,
        "server_errors": server_errors,
        "chain_ok": ok,
        "lock_wait_seconds": sampler.lock_seconds(),
    }
    trail = stats.get("audit trail (replica)", {})
    lags = [lag for lag in sampler.lags if lag >= 0]
    out.append(
        f"5. **Replica**: during that run an admin read the audit trail {trail.get('count', 0):.0f} times from the replica (median {trail.get('median', 0):.0f} ms, {trail.get('failures', 0):.0f} failures); replica lag from /healthz every 0.5 s: median {statistics.median(lags) if lags else -1:.3f} s, max {max(lags) if lags else -1:.3f} s ({len(lags)} samples)"
    )
    if lost or server_errors or not ok:
        # Which requests failed (name and status), so that a failing CI run says where to look.
        failed = collections.Counter(f"{e['name']} {e['status']}" for e in errors_of(lines))
        failures.append(
            f"editors: lost {lost}, 5xx {server_errors} {dict(failed)}, chain ok {ok} {detail}"
        )


def restart(out: list[str], seconds: int = 30, rate: int = 50) -> None:
    log = Path(tempfile.mkdtemp(prefix="restart-")) / "requests.jsonl"
    before, pids = findings_count(), app_pids()
    outage: list[float] = []
    warm = 40  # at most this long for the logins; the run is longer by as much

    def restart_primary() -> None:
        logged_in(log, rate, warm)
        time.sleep(seconds / 3)
        outage.append(time.time())
        subprocess.run([*CLUSTER, "restart-primary", "fast"], check=True)
        outage.append(time.time())

    thread = threading.Thread(target=restart_primary)
    thread.start()
    locust(["SteadyUser"], rate, seconds + warm, log)
    thread.join()
    lines = [line for line in log_lines(log) if line["name"] not in ("login", "login page")]
    steady = [line for line in lines if line["t"] >= outage[0] - seconds / 3]
    errors = errors_of(lines)
    late = [e for e in errors if e["t"] > outage[1] + 5 or e["t"] < outage[0]]
    last = max((e["t"] for e in errors), default=outage[1])
    accepted, lost, detail = check_saves(lines, before)
    ok = chain_ok()
    same = app_pids() == pids
    achieved = len(steady) / (max(line["t"] for line in steady) - min(line["t"] for line in steady))
    results["restart"] = {
        "asked_rps": rate,
        "achieved_rps": achieved,
        "outage_seconds": outage[1] - outage[0],
        "failed": len(errors),
        "requests": len(lines),
        "after_outage_seconds": max(0.0, last - outage[1]),
        "outside_window": len(late),
        "app_servers_kept": same,
        "accepted": accepted,
        "lost": lost,
        "chain_ok": ok,
    }
    out.append(
        f"3. **Database restart under load** (SteadyUser x {rate}, about {achieved:.0f} req/s achieved after the logins, `pg_ctl restart -m fast` of the primary {seconds // 3} s into the steady load): outage {outage[1] - outage[0]:.1f} s, {len(errors)} failed requests of {len(lines)}, the last failure **{max(0.0, last - outage[1]):.1f} s after the primary was back**, {len(late)} failures outside outage + 5 s; app servers not restarted: **{'yes' if same else 'NO'}**; {accepted} accepted saves, {lost} lost or half-written; chain verifies: **{'yes' if ok else 'NO'}**"
    )
    if late or lost or not ok or not same:
        failures.append(
            f"restart: late {len(late)}, lost {lost} {detail}, chain {ok}, same pids {same}"
        )


def kill_app(out: list[str], seconds: int = 30, users: int = 20) -> None:
    log = Path(tempfile.mkdtemp(prefix="kill-")) / "requests.jsonl"
    before = findings_count()
    moments: list[float] = []

    def kill() -> None:
        logged_in(log, users, 40)
        time.sleep(seconds / 3)
        moments.append(time.time())
        subprocess.run([*CLUSTER, "kill-app", "1"], check=True)
        time.sleep(seconds / 3)
        subprocess.run([*CLUSTER, "restart-app", "1"], check=True, stdout=subprocess.DEVNULL)

    thread = threading.Thread(target=kill)
    thread.start()
    stats = locust(["SteadyUser"], users, seconds + 40, log)
    thread.join()
    lines = log_lines(log)
    errors = errors_of(lines)
    relogin = sum(1 for line in lines if line["name"] == "case page" and line["status"] == 302)
    accepted, lost, detail = check_saves(lines, before)
    ok = chain_ok()
    out.append(
        f"4. **App server killed** (SIGKILL of app server 1 and its workers after {seconds // 3} s under SteadyUser x {users}, restarted {seconds // 3} s later): {len(errors)} failed requests of {len(lines)} ({stats.get('Aggregated', {}).get('failures', 0):.0f} counted by locust), **{relogin} answered with a login redirect** (sessions live in the database), {accepted} accepted saves, **{lost} lost**; chain verifies: **{'yes' if ok else 'NO'}**"
    )
    if lost or relogin or not ok:
        failures.append(f"kill: lost {lost} {detail}, relogin {relogin}, chain {ok}")


def soak(out: list[str], seconds: int, users: int = 10) -> None:
    pids = workers()
    rss_before = {pid: rss_mb(pid) for pid in pids}
    conns_before = server_connections()
    log = Path(tempfile.mkdtemp(prefix="soak-")) / "requests.jsonl"
    locust(["SteadyUser"], users, seconds, log)
    lines = log_lines(log)
    rss_after = {pid: rss_mb(pid) for pid in pids if Path(f"/proc/{pid}").exists()}
    conns_after = server_connections()
    change = ", ".join(f"{rss_before[p]:.0f}->{rss_after.get(p, 0):.0f}" for p in pids)
    out.append(
        f"6. **Soak**: {seconds} s at SteadyUser x {users} ({len(lines)} requests, {len(errors_of(lines))} failed): RSS per worker in MB before->after: {change}; the app role's connections in pg_stat_activity: {conns_before} -> {conns_after}"
    )


def head_commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()


def write_docs(lines: list[str], command: str, commit: str) -> None:
    """Replaces the Operations section of docs/benchmarks.md. `commit`: HEAD when the run
    started (the app servers run the code they were started with: restart them after a
    change)."""
    path = ROOT / "docs" / "benchmarks.md"
    text = path.read_text()
    head = "## Operations (issue 19)"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    pg_major = connection.pg_version // 10000  # type: ignore[attr-defined]
    section = "\n".join(
        [
            head,
            "",
            f"`{command}` on {date.today().isoformat()}, commit {commit}, against `make cluster` (PostgreSQL {pg_major} primary + streaming replica, 2 gunicorn x 2 workers, HAProxy, all on 127.0.0.1). Machine: 2 cores shared by locust, both app servers, both PostgreSQL servers and other work running at the same time: absolute rates are low and noisy; the ratios are the figures.",
            "",
            *lines,
            "",
        ]
    )
    if head in text:
        start = text.index(head)
        end = text.find("\n## ", start + len(head))
        text = text[:start] + section + (text[end + 1 :] if end != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default="throughput,editors,restart,kill,soak")
    parser.add_argument("--phase-seconds", type=int, default=10)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--editor-seconds", type=int, default=60)
    parser.add_argument("--restart-rate", type=int, default=50)
    parser.add_argument("--soak-seconds", type=int, default=600)
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    only = set(args.only.split(","))
    commit = head_commit()
    healthz()  # the cluster answers, or this fails at once
    out: list[str] = []
    if "throughput" in only:
        throughput(out, args.phase_seconds, args.users)
    if "editors" in only:
        editors(out, args.editor_seconds)
    if "restart" in only:
        restart(out, rate=args.restart_rate)
    if "kill" in only:
        kill_app(out)
    if "soak" in only:
        soak(out, args.soak_seconds)
    print("\n".join(out))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.write_docs:
        write_docs(out, "make loadtest LOADTEST_ARGS='" + " ".join(sys.argv[1:]) + "'", commit)
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
