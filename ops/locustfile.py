"""Locust users for ops/loadtest.py (run headless by it; see README "Load test").

The users read the logins and ids that `manage.py loadtest_setup` wrote
(LOADTEST_SETUP, var/cluster/loadtest.json). Every request of every user is logged as one JSON
line to LOADTEST_LOG (time, name, status, request id) so that the runner can compute error
windows and check each accepted save against the audit trail.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from django_otp.oath import totp
from locust import FastHttpUser, between, constant, constant_throughput, events, task

SETUP = json.loads(Path(os.environ.get("LOADTEST_SETUP", "var/cluster/loadtest.json")).read_text())
# Open for the whole run: one line per request.
_log = open(os.environ["LOADTEST_LOG"], "a") if os.environ.get("LOADTEST_LOG") else None  # noqa: SIM115
_physicians = itertools.cycle(SETUP["physicians"])
_VERSION = re.compile(r'name="expected_version" value="(\d+)"')


@events.request.add_listener
def _record(request_type: str, name: str, response: Any, exception: Any, **kwargs: Any) -> None:
    if _log is None:
        return
    status = getattr(response, "status_code", 0) or 0
    headers = getattr(response, "headers", None) or {}
    line = {
        "t": time.time(),
        "method": request_type,
        "name": name,
        "status": status,
        "error": bool(exception) and status < 400,
        "rid": headers.get("X-Request-Id", ""),
        "save": kwargs.get("context", {}).get("save"),
    }
    _log.write(json.dumps(line) + "\n")
    _log.flush()


class _LoggedIn(FastHttpUser):
    abstract = True
    username = ""

    def on_start(self) -> None:
        self.username = self.username or next(_physicians)
        self.client.get("/login/", name="login page")
        token = _cookie(self, "csrftoken") or ""
        self.client.post(
            "/login/",
            data={
                "username": self.username,
                "password": SETUP["password"],
                "csrfmiddlewaretoken": token,
            },
            name="login",
            allow_redirects=False,
        )

    def csrf(self) -> str:
        return _cookie(self, "csrftoken") or ""


def _cookie(user: FastHttpUser, name: str) -> str | None:
    for cookie in user.client.cookiejar:
        if cookie.name == name:
            return cookie.value
    return None


class PingUser(FastHttpUser):
    """The database-free floor: /ping on the same servers."""

    wait_time = constant(0)

    @task
    def ping(self) -> None:
        self.client.get("/ping", name="/ping")


class PageUser(FastHttpUser):
    """One page as fast as it is served: LOADTEST_PAGE is `case`, `big`, `checklist` or
    `list`. Logged in with sessions the runner made (LOADTEST_SESSIONS): a password login
    costs a password hash, which would be measured instead of the page."""

    wait_time = constant(0)
    _sessions = itertools.cycle(json.loads(os.environ.get("LOADTEST_SESSIONS", '[""]')))

    def on_start(self) -> None:
        page = os.environ.get("LOADTEST_PAGE", "case")
        self.path = {
            "case": f"/cases/{SETUP['typical_case']}/",
            "big": f"/cases/{SETUP['big_case']}/",
            "checklist": f"/cases/{SETUP['typical_case']}/checklist/",
            "list": "/cases/",
        }[page]
        self.name = page
        self.cookie = {"Cookie": f"sessionid={next(self._sessions)}"}

    @task
    def page(self) -> None:
        with self.client.get(
            self.path,
            name=self.name,
            headers=self.cookie,
            allow_redirects=False,
            catch_response=True,
        ) as r:
            r.success() if r.status_code == 200 else r.failure(str(r.status_code))


class EditorUser(_LoggedIn):
    """A physician editing one of five cases through the real forms: read the page (the form's
    version), then save. Conflicts (409, or the checklist's stale message) are expected."""

    wait_time = between(0.2, 0.8)

    def _read(self, url: str) -> int | None:
        """The form as the browser opens it: the case version it carries."""
        with self.client.get(url, name="open form (editor)", catch_response=True) as r:
            match = _VERSION.search(r.text or "")
            r.success() if r.status_code == 200 else r.failure(str(r.status_code))
            return int(match.group(1)) if match else None

    def _post(self, url: str, data: dict[str, Any], name: str, save: dict[str, Any]) -> None:
        data = {**data, "csrfmiddlewaretoken": self.csrf()}
        with self.client.post(
            url,
            data=data,
            name=name,
            allow_redirects=False,
            catch_response=True,
            context={"save": save},
        ) as r:
            # 302: saved; 409: the conflict page; 200: the form again (e.g. the checklist's
            # stale message, a duplicate question). Anything 5xx fails.
            if r.status_code in (200, 302, 409):
                r.success()
            else:
                r.failure(str(r.status_code))
            save["status"] = r.status_code

    @task(2)
    def edit_staging(self) -> None:
        target = random.choice(SETUP["editor_cases"])
        version = self._read(f"/cases/{target['case']}/staging/{target['staging']}/")
        if version is None:
            return
        t = random.choice(["1", "2", "3", "4"])
        data = {
            "staged_on": "2024-01-10",
            "kind": "clinical",
            "system": "uicc_tnm",
            "tnm_edition": "8",
            "t_prefix": "c",
            "t_category": t,
            "n_prefix": "c",
            "n_category": "0",
            "m_prefix": "c",
            "m_category": "0",
            "expected_version": version,
        }
        url = f"/cases/{target['case']}/staging/{target['staging']}/"
        self._post(
            url, data, "edit staging", {"kind": "staging", "case": target["case"], "value": t}
        )

    @task(1)
    def add_finding(self) -> None:
        target = random.choice(SETUP["editor_cases"])
        version = self._read(f"/cases/{target['case']}/immune/new/")
        if version is None:
            return
        day = (date(2020, 1, 1) + timedelta(days=random.randint(0, 1500))).isoformat()
        igg = f"{random.randint(40, 160) / 10:.1f}"
        data = {"assessed_on": day, "igg": igg, "expected_version": version}
        self._post(
            f"/cases/{target['case']}/immune/new/",
            data,
            "add finding",
            {"kind": "finding", "case": target["case"], "value": igg},
        )

    @task(2)
    def set_checklist_status(self) -> None:
        target = random.choice(SETUP["editor_cases"])
        category = random.choice(SETUP["categories"])
        with self.client.get(
            f"/cases/{target['case']}/checklist/", name="checklist (editor)", catch_response=True
        ) as r:
            match = re.search(rf'id="item-revision-{category}" value="(\d+)"', r.text or "")
        revision = match.group(1) if match else "0"
        status = random.choice(["raise", "discussed", "not_raised"])
        self._post(
            f"/cases/{target['case']}/checklist/{category}/",
            {"status": status, "note": "", "revision": revision},
            "set checklist status",
            {"kind": "checklist", "case": target["case"], "category": category, "value": status},
        )


class AdminReader(_LoggedIn):
    """A practice admin reading the audit trail (served from the replica) while the editors
    work."""

    wait_time = constant_throughput(2)
    fixed_count = 1  # one authenticator code per 30 s step
    username = SETUP["admin"]

    def on_start(self) -> None:
        super().on_start()
        key = bytes.fromhex(SETUP["admin_totp_key"])
        code = f"{totp(key, step=30, t0=0, digits=6):06d}"
        self.client.post(
            "/login/code/",
            data={"code": code, "csrfmiddlewaretoken": self.csrf()},
            name="login code",
            allow_redirects=False,
        )

    @task
    def trail(self) -> None:
        self.client.get("/audit/", name="audit trail (replica)")


class SteadyUser(_LoggedIn):
    """About one request a second each, mostly reads and a few saves: for the restart, kill and
    soak runs at a fixed rate (users x 1 req/s)."""

    wait_time = constant_throughput(1)

    @task(8)
    def read(self) -> None:
        with self.client.get(
            f"/cases/{SETUP['typical_case']}/",
            name="case page",
            allow_redirects=False,
            catch_response=True,
        ) as r:
            # A session lost with an app server would answer with the login redirect.
            r.success() if r.status_code == 200 else r.failure(str(r.status_code))

    @task(1)
    def list(self) -> None:
        self.client.get("/cases/", name="case list")

    @task(1)
    def add_finding(self) -> None:
        target = random.choice(SETUP["editor_cases"])
        with self.client.get(
            f"/cases/{target['case']}/immune/new/", name="open form", catch_response=True
        ) as r:
            match = _VERSION.search(r.text or "")
            r.success() if r.status_code == 200 else r.failure(str(r.status_code))
        if not match:
            return
        day = (date(2020, 1, 1) + timedelta(days=random.randint(0, 1500))).isoformat()
        igg = f"{random.randint(40, 160) / 10:.1f}"
        with self.client.post(
            f"/cases/{target['case']}/immune/new/",
            data={
                "assessed_on": day,
                "igg": igg,
                "expected_version": match.group(1),
                "csrfmiddlewaretoken": self.csrf(),
            },
            name="add finding",
            allow_redirects=False,
            catch_response=True,
            context={"save": {"kind": "finding", "case": target["case"], "value": igg}},
        ) as r:
            r.success() if r.status_code in (200, 302, 409) else r.failure(str(r.status_code))
