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


/* A run's log: search (hides lines that do not match), follow (keep the end in view), and new
   lines over SSE while the run goes. The page holds at most MAX_LINES lines; older ones are
   dropped (the download has them all), so a run with a huge log stays responsive. */
const MAX_LINES = 5000;
window.runyardLogs = function () {
  const section = document.getElementById("logs");
  if (!section) return;
  const log = document.getElementById("log");
  const search = document.getElementById("log-search");
  const follow = document.getElementById("log-follow");
  const state = document.getElementById("log-state");
  const matches = (line) => !search.value || line.textContent.toLowerCase().includes(search.value.toLowerCase());
  const filter = () => log.querySelectorAll(".line").forEach((l) => l.classList.toggle("hidden", !matches(l)));
  search.addEventListener("input", filter);
  document.body.addEventListener("htmx:afterSwap", filter);
  const toEnd = () => { if (follow.checked) log.scrollTop = log.scrollHeight; };
  toEnd();
  if (section.dataset.live !== "true") return;
  const url = "/ui/runs/" + encodeURIComponent(section.dataset.run) + "/logs/stream?offset=" + section.dataset.offset;
  const source = new EventSource(url);
  source.addEventListener("log", (event) => {
    for (const text of event.data.split("\n")) {
      const line = document.createElement("span");
      line.className = "line";
      line.textContent = text + "\n";
      if (!matches(line)) line.classList.add("hidden");
      log.appendChild(line);
    }
    const lines = log.querySelectorAll(".line");
    if (lines.length > MAX_LINES) {
      for (let i = 0; i < lines.length - MAX_LINES; i++) lines[i].remove();
      const earlier = log.querySelector(".log-earlier");
      if (earlier) earlier.remove();
    }
    toEnd();
  });
  source.addEventListener("end", () => {
    source.close();
    state.textContent = "ended";
    window.setTimeout(() => window.location.reload(), 300); /* the output and artifacts are in now */
  });
  source.onerror = () => { state.textContent = "reconnecting…"; };
  source.onopen = () => { state.textContent = "live"; };
};

onReady(() => {
  signInMethods();
  confirmations();
  fieldMessages();
  runyardLogs();
});
