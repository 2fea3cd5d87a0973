// ccs dashboard: the live parts. Every page works without this file.
//
// * [data-confirm] forms and buttons ask before they submit.
// * #conversation[data-events] listens to the execution's event stream
//   (EventSource) and re-fetches the server-rendered conversation
//   (data-fragment) when lines arrive; the stream ends with the run.
// * [data-reload-on] (a workflow run) reloads the page on each new event.
// * [data-refresh] is the refresh-interval picker of list pages, with a
//   pause button; the choice is remembered in localStorage.
"use strict";

document.addEventListener("submit", (ev) => {
  const submitter = ev.submitter;
  const message =
    (submitter && submitter.dataset.confirm) || ev.target.dataset.confirm;
  if (message && !window.confirm(message)) ev.preventDefault();
});

function liveConversation(box) {
  const source = new EventSource(box.dataset.events);
  let pending = null;
  const refresh = () => {
    pending = null;
    fetch(box.dataset.fragment, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => {
        box.innerHTML = html;
        box.dataset.updated = String(Date.now());
      })
      .catch(() => {});
  };
  const soon = () => {
    if (!pending) pending = setTimeout(refresh, 250);
  };
  source.addEventListener("log", soon);
  source.addEventListener("end", () => {
    source.close();
    // The outcome (status, cost, result) is on the page itself.
    setTimeout(() => window.location.reload(), 300);
  });
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) soon();
  };
}

function reloadOnEvents(el) {
  const source = new EventSource(el.dataset.reloadOn);
  let first = true;
  let timer = null;
  // The stream replays past events first; reload only for new ones.
  setTimeout(() => (first = false), 1500);
  source.onmessage = null;
  const onEvent = () => {
    if (first) return;
    if (!timer) timer = setTimeout(() => window.location.reload(), 300);
  };
  ["step_started", "step_finished", "routed", "status", "message"].forEach(
    (name) => source.addEventListener(name, onEvent),
  );
  source.addEventListener("message", onEvent);
}

function refreshPicker(box) {
  const select = box.querySelector("select");
  const pause = box.querySelector("[data-pause]");
  const key = "ccs.refresh";
  let timer = null;
  let paused = localStorage.getItem(key + ".paused") === "1";
  select.value = localStorage.getItem(key) || "0";
  const arm = () => {
    clearTimeout(timer);
    pause.textContent = paused ? "resume" : "pause";
    pause.setAttribute("aria-pressed", paused ? "true" : "false");
    const secs = Number(select.value);
    if (secs > 0 && !paused) {
      timer = setTimeout(() => window.location.reload(), secs * 1000);
    }
  };
  select.addEventListener("change", () => {
    localStorage.setItem(key, select.value);
    arm();
  });
  pause.addEventListener("click", () => {
    paused = !paused;
    localStorage.setItem(key + ".paused", paused ? "1" : "0");
    arm();
  });
  arm();
}

document.addEventListener("DOMContentLoaded", () => {
  const box = document.querySelector("#conversation[data-events]");
  if (box && window.EventSource) liveConversation(box);
  const run = document.querySelector("[data-reload-on]");
  if (run && window.EventSource) reloadOnEvents(run);
  const picker = document.querySelector("[data-refresh]");
  if (picker) refreshPicker(picker);
});
