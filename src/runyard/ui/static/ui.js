/* runyard web UI: the little behaviour pages need beyond HTML and htmx. Everything a page
   shows comes from the server already escaped; text added here goes in with textContent. */
"use strict";

function onReady(fn) {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", fn);
  else fn();
}

/* Sign-in: show the fields of the chosen method (without script, all of them show). */
function signInMethods() {
  const radios = document.querySelectorAll('input[name="method"]');
  if (!radios.length) return;
  const apply = () => {
    const chosen = document.querySelector('input[name="method"]:checked').value;
    document.querySelectorAll("[data-method]").forEach((el) => { el.hidden = el.dataset.method !== chosen; });
  };
  radios.forEach((r) => r.addEventListener("change", apply));
  apply();
}

/* Forms and buttons that ask first: data-confirm="Cancel this run?". */
function confirmations() {
  document.addEventListener("submit", (event) => {
    const form = event.target;
    const question = form.dataset && form.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });
}

/* Client-side validation messages next to the field (the server checks again and says the same). */
function fieldMessages() {
  document.querySelectorAll("form[data-validate]").forEach((form) => {
    form.addEventListener("invalid", (event) => {
      const input = event.target;
      const slot = document.getElementById(input.id + "-error");
      input.setAttribute("aria-invalid", "true");
      if (slot) slot.textContent = input.validationMessage;
    }, true);
    form.addEventListener("input", (event) => {
      const input = event.target;
      if (input.validity && input.validity.valid) {
        input.removeAttribute("aria-invalid");
        const slot = document.getElementById(input.id + "-error");
        if (slot && slot.dataset.server !== "1") slot.textContent = "";
      }
    });
  });
}

onReady(() => {
  signInMethods();
  confirmations();
  fieldMessages();
  if (window.runyardLogs) window.runyardLogs();
});
