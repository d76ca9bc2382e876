// Small progressive enhancements; every page works without this file.
// The OncoTree combobox says whether its list of tumour types is open (aria-expanded).
function syncExpanded(box) {
  if (!box || !box.id) return;
  const open = box.querySelector("[role=listbox]") ? "true" : "false";
  document.querySelectorAll(`[aria-controls="${box.id}"][role=combobox]`).forEach((input) => {
    input.setAttribute("aria-expanded", open);
  });
}
document.addEventListener("htmx:afterSwap", (event) => {
  if (event.detail && event.detail.target) syncExpanded(event.detail.target);
});
document.addEventListener("click", (event) => {
  // Type-ahead results: a click fills the input and closes the list.
  const option = event.target.closest("[data-fill]");
  if (!option) return;
  const input = document.getElementById(option.dataset.fillTarget);
  if (!input) return;
  input.value = option.dataset.fill;
  const list = option.closest("[role=listbox]");
  const box = list && list.parentElement;
  if (box) {
    box.innerHTML = "";
    syncExpanded(box);
  }
  input.focus();
});
document.addEventListener("keydown", (event) => {
  // Arrow keys move between type-ahead options; Escape closes the list.
  const input = event.target;
  if (!(input instanceof HTMLElement)) return;
  const box = document.getElementById(input.getAttribute("aria-controls") || "") ||
    input.closest("[data-typeahead-results]");
  if (!box) return;
  const options = Array.from(box.querySelectorAll("[data-fill]"));
  if (!options.length) return;
  const index = options.indexOf(document.activeElement);
  if ((event.key === "Enter" || event.key === " ") && index >= 0) {
    event.preventDefault(); // an option picked with the keyboard, as with a click
    options[index].click();
  } else if (event.key === "ArrowDown") {
    event.preventDefault();
    options[Math.min(index + 1, options.length - 1)].focus();
  } else if (event.key === "ArrowUp") {
    event.preventDefault();
    if (index <= 0) document.getElementById(options[0].dataset.fillTarget)?.focus();
    else options[index - 1].focus();
  } else if (event.key === "Escape") {
    event.preventDefault(); // closes the list only, not the inline form around it
    box.innerHTML = "";
    syncExpanded(box);
  }
});

// Checklist cards (templates/checklist/_checklist_item.html) and meeting mode's board decision
// (templates/checklist/meeting_mode.html), one save path each. The form's data-hx-trigger saves status
// and note together: at once on a status, after a pause in typing, or with Save; htmx queues a
// card's saves. The status line only ever says "Saved at" from the server's answer; this block
// says when the card holds more than the server confirmed, and after a stale refusal it stops
// typing from saving over the other entry until the physician saves on purpose.
(() => {
  const cardForm = (event) =>
    event.target instanceof Element ? event.target.closest("form.checklist-form") : null;
  // What the card holds: every field but the token and the revision (a checklist card's
  // status and note; meeting mode's measures, deviations and follow-up date).
  const entry = (form) =>
    JSON.stringify(Array.from(new FormData(form)).filter(
      ([name]) => name !== "csrfmiddlewaretoken" && name !== "revision"));
  const show = (form, state) => {
    const line = form.querySelector("[data-pending]");
    if (!line) return;
    form.dataset.state = state;
    line.textContent = state ? line.dataset[state] ?? "" : "";
  };
  document.addEventListener("input", (event) => {
    const form = cardForm(event);
    if (form && form.dataset.state !== "saving") show(form, "unsaved");
  });
  document.addEventListener("htmx:confirm", (event) => {
    const form = cardForm(event);
    if (!form || !form.querySelector("[data-stale]")) return;
    const trigger = event.detail.triggeringEvent;
    // A save queued before the refusal arrived carries the other user's revision now.
    if (trigger?.type === "input" || (trigger?.timeStamp ?? 0) < (form.staleSince ?? 0)) {
      event.preventDefault();
    }
  });
  document.addEventListener("htmx:beforeRequest", (event) => {
    const form = cardForm(event);
    if (!form) return;
    form.dataset.sent = entry(form);
    show(form, "saving");
  });
  document.addEventListener("htmx:afterRequest", (event) => {
    const form = cardForm(event);
    if (!form) return;
    if (!event.detail.successful) {
      show(form, "failed");
    } else {
      if (form.querySelector("[data-stale]")) form.staleSince = performance.now();
      // A refusal in the status line says itself that nothing was saved.
      const confirmed = form.querySelector("[data-saved]") && form.dataset.sent === entry(form);
      show(form, confirmed || form.querySelector("[role=alert]") ? "" : "unsaved");
    }
  });
})();

// Inline rows on the case page (templates/checklist/_row_form.html, _inline_slot.html): a row
// form opens in its section, Enter saves, Shift+Enter saves and opens a new form, Escape
// cancels; the focus moves to the first field, to the first field in error, or to the saved
// row; a failed request says so in the form. htmx runs with allowEval off, so all of it is here.
(() => {
  const FIELDS = "input:not([type=hidden]):not([disabled]), select:not([disabled]), " +
    "textarea:not([disabled]), button:not([disabled])";
  const inlineForm = (node) =>
    node instanceof Element ? node.closest("form[data-inline-form]") : null;

  const focusIn = (element) => {
    if (!element) return;
    if (element.matches("form")) {
      const field = element.querySelector(".is-invalid") || element.querySelector(FIELDS);
      (field || element).focus();
    } else {
      element.focus();
    }
    element.scrollIntoView({ block: "nearest" });
  };

  // After htmx put a section in: focus what the server named (data-focus).
  document.addEventListener("htmx:afterSettle", (event) => {
    const section = event.target;
    if (!(section instanceof Element) || !section.matches(".case-section[data-focus]")) return;
    // Only the latest save is marked: earlier "Saved." notes and marks elsewhere go.
    document.querySelectorAll("[data-inline-message], .row-saved").forEach((element) => {
      if (!section.contains(element)) {
        if (element.matches("[data-inline-message]")) element.remove();
        else element.classList.remove("row-saved");
      }
    });
    const target = document.getElementById(section.dataset.focus);
    section.removeAttribute("data-focus");
    if (target && target.matches("tr, li, article")) target.classList.add("row-saved");
    // Someone already quicker than the settle step, in the new section: leave the focus there.
    const active = document.activeElement;
    if (active && active !== document.body && section.contains(active)) return;
    focusIn(target);
  });

  // Cancel: the form leaves, the section stays as it is; the focus goes back to the link that
  // opened the form (same address), or to the section's heading.
  const cancel = (form) => {
    const section = form.closest(".case-section");
    const scope = form.closest(".therapy-line") || section;
    const address = form.getAttribute("data-hx-post");
    (form.closest("[data-inline-slot]") || form).remove();
    if (!scope || !section) return;
    const links = Array.from(scope.querySelectorAll("a[data-hx-get]"));
    const opener = links.find((link) => link.getAttribute("data-hx-get") === address) ||
      links.find((link) => link.getAttribute("data-hx-get").split("?")[0] === address);
    const heading = section.querySelector("h2");
    if (opener) {
      opener.focus();
    } else if (heading) {
      heading.setAttribute("tabindex", "-1");
      heading.focus();
    }
  };

  document.addEventListener("click", (event) => {
    const link = event.target instanceof Element ? event.target.closest("[data-inline-cancel]") : null;
    const form = inlineForm(link);
    if (!form) return;
    event.preventDefault();
    cancel(form);
  });

  document.addEventListener("keydown", (event) => {
    const form = inlineForm(event.target);
    if (!form || event.isComposing) return;
    if (event.key === "Escape") {
      if (event.defaultPrevented) return; // the type-ahead list closed instead
      event.preventDefault();
      cancel(form);
      return;
    }
    if (event.key !== "Enter") return;
    const field = event.target;
    if (field instanceof HTMLTextAreaElement) {
      if (!(event.ctrlKey || event.metaKey)) return; // Enter is a new line; Ctrl+Enter saves
    } else if (field instanceof HTMLInputElement) {
      if (["button", "submit", "reset", "file", "image"].includes(field.type)) return;
    } else if (!(field instanceof HTMLSelectElement)) {
      return; // buttons and links act as themselves
    }
    event.preventDefault();
    const save = form.querySelector("[data-save]");
    const another = form.querySelector("[data-save-another]");
    const button = event.shiftKey && another ? another : save;
    // A click (not requestSubmit) so htmx sends the button's name: "another" or not.
    if (button) button.click();
  });

  // Errors htmx does not swap (500, 403, a lost connection): say so in the form, keep the input.
  const report = (event, message) => {
    const elt = event.detail.elt;
    if (!(elt instanceof Element) || elt.closest("form.checklist-form")) return;
    const form = elt.closest("form") || elt.closest(".case-section");
    if (!form) return;
    let alert = form.querySelector("[data-request-error]");
    if (!alert) {
      alert = document.createElement("div");
      alert.className = "alert alert-danger py-1 px-2 my-2";
      alert.setAttribute("role", "alert");
      alert.setAttribute("data-request-error", "");
      alert.tabIndex = -1;
      form.prepend(alert);
    }
    alert.textContent = message;
    alert.focus();
  };
  const messages = () => document.getElementById("main")?.dataset ?? {};
  document.addEventListener("htmx:responseError", (event) => {
    const status = String(event.detail.xhr?.status ?? "");
    report(event, (messages().errorServer || "Error %(status)s").replace("%(status)s", status));
  });
  document.addEventListener("htmx:sendError", (event) => {
    report(event, messages().errorNetwork || "The server could not be reached.");
  });
  document.addEventListener("htmx:beforeRequest", (event) => {
    const form = inlineForm(event.detail.elt);
    form?.querySelector("[data-request-error]")?.remove();
  });
})();

// Session timeout warning (checklist/sessions.py; the box is #session-warning in base.html). The
// body says how many seconds the session has left without activity; the warning shows
// data-session-warning-seconds before that. Before warning or saying the session ended, the page
// asks the server (marked as background, which is not activity): another tab may have kept the
// session alive. "Stay signed in" posts to the keep-alive URL without leaving the page, so
// whatever was typed stays in its fields (a button, not a form: the page's forms stay its own).
// Every htmx answer says the new time left.
(() => {
  const body = document.body;
  const box = document.getElementById("session-warning");
  if (!box || body.dataset.sessionSecondsLeft === undefined) return;
  const stay = box.querySelector("[data-session-stay]");
  const text = box.querySelector("[data-session-text]");
  const idleText = text.textContent;
  const lead = Number(body.dataset.sessionWarningSeconds) * 1000;
  let timer = null;

  const show = (message, canStay) => {
    text.textContent = message;
    stay.hidden = !canStay;
    box.hidden = false;
  };
  const ended = () => {
    clearTimeout(timer);
    show(box.dataset.ended, false);
  };
  const update = (answer) => {
    clearTimeout(timer);
    const left = Number(answer.seconds_left) * 1000;
    if (!(left > 0)) {
      ended();
      return;
    }
    if (left > lead) {
      box.hidden = true;
      timer = setTimeout(ask, left - lead);
      return;
    }
    if (!("final" in answer)) {
      ask(); // a page or htmx answer: only the keep-alive URL says whether it can be extended
      return;
    }
    show(answer.final ? box.dataset.final : idleText, !answer.final);
    timer = setTimeout(ask, left + 500); // just past the end: the server then says it ended
  };
  // A redirect (to the login page) or any answer that is not ours means the session is gone.
  const read = (response) =>
    !response.redirected && (response.headers.get("Content-Type") || "").startsWith("application/json")
      ? response.json().then(update)
      : ended();
  const retry = () => {
    clearTimeout(timer);
    timer = setTimeout(ask, 15000);
  };
  function ask() {
    fetch(box.dataset.url, { headers: { "X-Background": "1" }, credentials: "same-origin" })
      .then(read)
      .catch(retry);
  }

  stay.addEventListener("click", () => {
    fetch(box.dataset.url, {
      method: "POST",
      headers: { "X-CSRFToken": box.dataset.csrf },
      credentials: "same-origin",
    })
      .then(read)
      .catch(retry);
  });
  document.addEventListener("htmx:afterRequest", (event) => {
    const left = event.detail.xhr?.getResponseHeader("X-Session-Seconds-Left");
    if (left !== null && left !== undefined) update({ seconds_left: left });
  });
  update({ seconds_left: body.dataset.sessionSecondsLeft });
})();

// Meeting mode (templates/checklist/meeting_mode.html): Ctrl+Enter (or Cmd+Enter) in the board
// decision saves it with its Save button; the previous and next cases have access keys.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
  const form = event.target instanceof Element ? event.target.closest("form.decision-form") : null;
  if (!form) return;
  event.preventDefault();
  form.querySelector("[data-save]")?.click();
});
// Back from adding someone to the attendance (#attendance): the focus is in the name field
// again for the next person (a fragment keeps the browser from honouring autofocus).
window.addEventListener("load", () => {
  if (location.hash === "#attendance") document.getElementById("att-name")?.focus();
});
