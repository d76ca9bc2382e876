"""The services' row locks and the audit chain's advisory lock, taken in opposite orders by two
transactions, never deadlock.

A writer appends to the chain (holding the practice's advisory lock until commit) and, at
commit, checks its deferred foreign keys, which takes a key-share lock on the referenced case
row. A service that locked that case row to check its version then waits for the chain. If the
service's lock conflicted with key share (FOR UPDATE), each would wait for the other and
PostgreSQL would abort one of them: under load, a 500 for a physician's save."""

import threading
import time

import pytest
from django.db import connection, transaction

from checklist import services
from checklist.models import Case, Comorbidity, Practice


def _waiting_for_an_advisory_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return cursor.fetchone()[0] > 0


@pytest.mark.django_db(transaction=True)
def test_a_save_waiting_for_the_chain_lets_an_earlier_writer_commit():
    practice = Practice.objects.create(name="Locking practice")
    case = Case.objects.create(practice=practice, label="Lock test", **Case.MINIMAL)
    appended, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def earlier_writer() -> None:
        try:
            with transaction.atomic():
                # Appends to the chain now; checks the row's key on the case at commit.
                Comorbidity.objects.create(practice=practice, case=case, name="Asthma")
                appended.set()
                release.wait(20)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            appended.set()
            connection.close()

    def service_save() -> None:
        try:
            appended.wait(20)
            with transaction.atomic():
                services.case_row_save(
                    case=case,
                    row=Comorbidity(name="Diabetes mellitus type 2"),
                    acting_user=None,
                    expected_version=case.version,
                )
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=earlier_writer), threading.Thread(target=service_save)]
    for thread in threads:
        thread.start()
    # The service has locked the case row and waits for the chain's lock.
    deadline = time.monotonic() + 20
    while not _waiting_for_an_advisory_lock():
        assert time.monotonic() < deadline, "the service never waited for the chain"
        time.sleep(0.05)
    release.set()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    names = sorted(Comorbidity.objects.filter(case=case).values_list("name", flat=True))
    assert names == ["Asthma", "Diabetes mellitus type 2"]
