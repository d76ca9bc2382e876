// Small progressive enhancements; every page works without this file.
document.addEventListener("click", (event) => {
  // Type-ahead results: a click fills the input and closes the list.
  const option = event.target.closest("[data-fill]");
  if (!option) return;
  const input = document.getElementById(option.dataset.fillTarget);
  if (!input) return;
  input.value = option.dataset.fill;
  const list = option.closest("[role=listbox]");
  if (list && list.parentElement) list.parentElement.innerHTML = "";
  input.focus();
});
document.addEventListener("keydown", (event) => {
  // Arrow keys move between type-ahead options; Escape closes the list.
  const input = event.target;
  if (!(input instanceof HTMLElement)) return;
  const box = document.getElementById(input.getAttribute("aria-controls") || "") ||
    input.closest("#oncotree-results");
  if (!box) return;
  const options = Array.from(box.querySelectorAll("[data-fill]"));
  if (!options.length) return;
  const index = options.indexOf(document.activeElement);
  if (event.key === "ArrowDown") {
    event.preventDefault();
    options[Math.min(index + 1, options.length - 1)].focus();
  } else if (event.key === "ArrowUp") {
    event.preventDefault();
    if (index <= 0) document.getElementById(options[0].dataset.fillTarget)?.focus();
    else options[index - 1].focus();
  } else if (event.key === "Escape") {
    box.innerHTML = "";
  }
});
document.addEventListener("change", (event) => {
  // Checklist: choosing a status saves it at once (with the note as typed); htmx handles the
  // form's submit and swaps in the updated item. Without JavaScript the Save button does it.
  const radio = event.target;
  if (!(radio instanceof HTMLInputElement) || radio.type !== "radio") return;
  const form = radio.closest("form.checklist-form");
  if (form && window.htmx) form.requestSubmit();
});
