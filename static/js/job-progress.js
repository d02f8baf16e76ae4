/*
 * Keeps the job page's progress card current without a reload: every POLL_MS it fetches
 * the card from data-url and swaps it in. When the job's status changes (queued → running,
 * or running → done/failed), the whole page reloads, so the viewer, the downloads and the
 * charts of a finished job appear. Without JavaScript the page still works: reload it.
 */
(function () {
  "use strict";
  const POLL_MS = 2000;

  function schedule(card) {
    if (!card || !card.hasAttribute("data-job-live")) return;
    window.setTimeout(() => refresh(card), POLL_MS);
  }

  async function refresh(card) {
    let html;
    try {
      const response = await fetch(card.dataset.url, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      if (!response.ok) throw new Error(String(response.status));
      html = await response.text();
    } catch (error) {
      card.dataset.pollError = String(error);
      schedule(card); // a dropped request is retried on the next tick
      return;
    }
    const holder = document.createElement("div");
    holder.innerHTML = html.trim();
    const fresh = holder.querySelector("#job-progress");
    if (!fresh) return schedule(card);
    if (fresh.dataset.jobStatus !== card.dataset.jobStatus) {
      window.location.reload();
      return;
    }
    card.replaceWith(fresh);
    schedule(fresh);
  }

  function init() {
    schedule(document.getElementById("job-progress"));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
