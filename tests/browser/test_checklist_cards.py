"""Checklist cards in the browser: one save path per card (status and note together, a card's
saves queued), typed text never replaced, "Saved at" only from the server's answer, autosave
after a pause in typing, a stale save refused with the typed note kept, the Save button without
JavaScript, and no console errors (the CSP allows no inline style)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from checklist.models import Category, ChecklistItem, Membership
from tests.browser.pages import login, screenshot
from tests.factories import logged_in, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ITEM_POST = re.compile(r"/cases/\d+/checklist/\d+/$")


class SlowAnswers:
    """Holds back the server's answers to the first `n` item POSTs until `release()`: the
    server has saved, the browser has not heard yet (a slow network)."""

    def __init__(self, page, n: int = 1):
        self.page, self.n, self.seen = page, n, 0
        self.held: list = []
        page.route(ITEM_POST, self._handle)

    def _handle(self, route):
        if route.request.method != "POST" or self.seen >= self.n:
            route.continue_()
            return
        self.seen += 1
        self.held.append((route, route.fetch()))

    def wait(self, count: int = 1):
        for _ in range(250):
            if len(self.held) >= count:
                return
            self.page.wait_for_timeout(20)
        raise AssertionError(f"{count} item POST(s) expected, {len(self.held)} seen")

    def release(self):
        while self.held:
            route, response = self.held.pop(0)
            route.fulfill(response=response)


def item(case, code):
    return ChecklistItem.objects.filter(checklist__case=case, category__code=code).first()


def open_checklist(page, case):
    login(page)
    page.goto(f"/cases/{case.pk}/checklist/")


def test_a_save_while_a_status_save_runs_keeps_the_note(page, case):
    # Silent failure 3 of issue 13: the status radio saved at once, Save was clicked while
    # that request ran, and the answer replaced the card: the typed note was gone, and the
    # card said "set by ..." as if all was well.
    open_checklist(page, case)
    slow = SlowAnswers(page)
    card = page.locator("#category-radiotherapy")
    note = card.get_by_label("Note")
    status_line = card.get_by_test_id("set-by")
    note.fill("Bone pain")
    card.get_by_label("raise at board").check()
    slow.wait()  # the status save has reached the server; its answer is held back
    note.press_sequentially(": ask radiotherapy.")
    card.get_by_role("button", name="Save").click()
    page.wait_for_timeout(300)
    # Nothing on the card claims a save the browser has not heard of.
    assert "Saved at" not in status_line.inner_text()
    while_held = card.get_by_test_id("pending").all_inner_texts()
    screenshot(page, "checklist-card-saving")

    slow.release()
    expect(note).to_have_value("Bone pain: ask radiotherapy.")
    expect(status_line).to_contain_text("Saved at", timeout=5_000)
    expect(card.get_by_test_id("pending")).to_have_text("")
    assert while_held == ["Saving…"]
    saved = item(case, "radiotherapy")
    assert (saved.status, saved.note, saved.revision) == (
        "raise",
        "Bone pain: ask radiotherapy.",
        2,  # both saves taken, the second with the revision the first answered with
    )
    screenshot(page, "checklist-card-saved")
    page.reload()
    expect(page.locator("#category-radiotherapy").get_by_label("Note")).to_have_value(
        "Bone pain: ask radiotherapy."
    )
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_typing_during_a_save_is_not_reported_as_saved(page, case):
    open_checklist(page, case)
    slow = SlowAnswers(page, n=2)
    card = page.locator("#category-chemotherapy")
    note = card.get_by_label("Note")
    pending = card.get_by_test_id("pending")
    note.fill("First")
    card.get_by_label("raise at board").check()
    slow.wait()
    note.press_sequentially(" and more")
    slow.release()
    # The first answer says what it saved, and the card that the rest is not saved yet ...
    expect(card.get_by_test_id("set-by")).to_contain_text("Saved at", timeout=5_000)
    assert pending.inner_text() in ("Not saved yet.", "Saving…")
    expect(note).to_have_value("First and more")
    # ... while the autosave after the pause is on its way ...
    slow.wait(1)
    expect(pending).to_have_text("Saving…")
    assert item(case, "chemotherapy").note == "First and more"  # the server has it
    # ... and until its answer arrives.
    slow.release()
    expect(pending).to_have_text("")
    assert item(case, "chemotherapy").revision == 2
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_a_note_saves_itself_after_a_pause_in_typing(page, case):
    open_checklist(page, case)
    card = page.locator("#category-immune_supportive")
    card.get_by_label("Note").fill("Patient asks about supportive measures.")
    before_pause = card.get_by_test_id("pending").all_inner_texts()
    screenshot(page, "checklist-card-unsaved")
    assert item(case, "immune_supportive") is None  # not on every keystroke
    for _ in range(50):  # the pause is 1 s
        if item(case, "immune_supportive"):
            break
        page.wait_for_timeout(100)
    saved = item(case, "immune_supportive")
    assert saved is not None, "not saved after a pause in typing"
    expect(card.get_by_test_id("set-by")).to_contain_text("Saved at")
    expect(card.get_by_test_id("pending")).to_have_text("")
    assert before_pause == ["Not saved yet."]
    # The note goes with the status the card shows.
    assert (saved.status, saved.note) == (
        "not_yet_reviewed",
        "Patient asks about supportive measures.",
    )
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_a_resized_note_field_saves_without_a_csp_error(page, case):
    # A textarea the user resized carries a style attribute; htmx's settle step copied it
    # onto the swapped-in card, which the CSP (style-src 'self') refuses with a console error.
    open_checklist(page, case)
    card = page.locator("#category-chemotherapy")
    note = card.get_by_label("Note")
    # What Chromium's resize handle does (headless Chromium draws none to drag).
    note.evaluate("textarea => { textarea.style.height = '6em' }")
    assert note.get_attribute("style")
    note.fill("Resized")
    card.get_by_label("discussed").check()
    expect(card.get_by_test_id("set-by")).to_contain_text("set by", timeout=5_000)
    page.wait_for_timeout(300)  # htmx settles after 20 ms
    assert item(case, "chemotherapy").note == "Resized"
    assert page.console_errors == []  # type: ignore[attr-defined]
    # htmx read the meta config: whatever else it swaps, it settles no style attribute.
    assert "style" not in page.evaluate("htmx.config.attributesToSettle")
    assert page.evaluate("htmx.version").startswith("2.")


def test_a_stale_save_is_refused_and_the_typed_note_stays(page, case):
    colleague = make_user("anna", case.practice, Membership.PHYSICIAN)
    open_checklist(page, case)
    chemo = Category.objects.get(practice=case.practice, code="chemotherapy")
    # The colleague saves the item after the page was loaded.
    logged_in(colleague).post(
        f"/cases/{case.pk}/checklist/{chemo.pk}/",
        {"status": "discussed", "note": "Discussed on Monday.", "revision": 0},
    )
    card = page.locator("#category-chemotherapy")
    note = card.get_by_label("Note")
    note.fill("My note")
    card.get_by_label("raise at board").check()
    error = card.get_by_test_id("item-error")
    expect(error).to_contain_text("Anna changed this item in the meantime", timeout=5_000)
    expect(error).to_contain_text("Discussed on Monday.")
    expect(note).to_have_value("My note")
    assert "Saved at" not in card.get_by_test_id("set-by").inner_text()
    assert item(case, "chemotherapy").note == "Discussed on Monday."
    screenshot(page, "checklist-card-stale")
    # Typing on does not save over the colleague's entry ...
    note.press_sequentially(" (checked)")
    page.wait_for_timeout(1_600)
    expect(card.get_by_test_id("pending")).to_have_text("Not saved yet.")
    assert item(case, "chemotherapy").note == "Discussed on Monday."
    # ... saving on purpose does, after the physician has seen it.
    card.get_by_role("button", name="Save").click()
    expect(card.get_by_test_id("set-by")).to_contain_text("Saved at", timeout=5_000)
    saved = item(case, "chemotherapy")
    assert (saved.status, saved.note, saved.set_by.username) == (
        "raise",
        "My note (checked)",
        "alice",
    )
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_a_save_queued_behind_a_stale_refusal_is_not_taken(page, case):
    # The refusal hands the form the colleague's revision; a Save clicked before the refusal
    # arrived must not use it to save over an entry the physician has not seen.
    colleague = make_user("anna", case.practice, Membership.PHYSICIAN)
    open_checklist(page, case)
    chemo = Category.objects.get(practice=case.practice, code="chemotherapy")
    logged_in(colleague).post(
        f"/cases/{case.pk}/checklist/{chemo.pk}/",
        {"status": "discussed", "note": "Anna's note", "revision": 0},
    )
    slow = SlowAnswers(page)
    card = page.locator("#category-chemotherapy")
    card.get_by_label("Note").fill("My note")
    card.get_by_label("raise at board").check()
    slow.wait()
    card.get_by_role("button", name="Save").click()  # queued behind the status save
    slow.release()
    expect(card.get_by_test_id("item-error")).to_contain_text("changed this item")
    page.wait_for_timeout(500)
    assert item(case, "chemotherapy").note == "Anna's note"
    expect(card.get_by_test_id("item-error")).to_contain_text("changed this item")
    card.get_by_role("button", name="Save").click()  # after seeing it: taken
    expect(card.get_by_test_id("set-by")).to_contain_text("Saved at")
    assert item(case, "chemotherapy").note == "My note"
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_without_javascript_the_save_button_saves_and_a_stale_save_keeps_the_note(
    browser, live_server, case
):
    context = browser.new_context(
        base_url=live_server.url, locale="en-GB", java_script_enabled=False
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        open_checklist(page, case)
        card = page.locator("#category-radiotherapy")
        card.get_by_label("Note").fill("Bone pain")
        card.get_by_label("raise at board").check()
        card.get_by_role("button", name="Save").click()
        page.wait_for_url(re.compile(r"#category-radiotherapy$"))
        saved = item(case, "radiotherapy")
        assert (saved.status, saved.note) == ("raise", "Bone pain")
        card = page.locator("#category-radiotherapy")
        expect(card.get_by_test_id("set-by")).to_contain_text("set by")

        colleague = make_user("anna", case.practice, Membership.PHYSICIAN)
        logged_in(colleague).post(
            f"/cases/{case.pk}/checklist/{saved.category_id}/",
            {"status": "discussed", "note": "Anna's note", "revision": saved.revision},
        )
        card.get_by_label("Note").fill("Bone pain: ask radiotherapy.")
        card.get_by_role("button", name="Save").click()
        page.wait_for_url(ITEM_POST)  # the refusal is rendered in place, not redirected
        card = page.locator("#category-radiotherapy")
        expect(card.get_by_test_id("item-error")).to_contain_text("changed this item")
        expect(card.get_by_label("Note")).to_have_value("Bone pain: ask radiotherapy.")
        assert item(case, "radiotherapy").note == "Anna's note"
        screenshot(page, "checklist-card-stale-nojs")
        # Save again, after checking: taken.
        card.get_by_role("button", name="Save").click()
        page.wait_for_url(re.compile(r"#category-radiotherapy$"))
        assert item(case, "radiotherapy").note == "Bone pain: ask radiotherapy."
    finally:
        context.close()
