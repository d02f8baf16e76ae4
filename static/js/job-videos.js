/*
 * Keeps the job page's Video card current while a video is being made: every POLL_MS it
 * fetches the list of videos from data-url (rendered by the server, so one template serves
 * both) and swaps in only the items whose state or progress changed, so a focused download
 * link or a playing preview of a finished video is left alone. It stops once no video is
 * queued or running. Without JavaScript the page still works: reload it.
 */
(function () {
  "use strict";
  const POLL_MS = 2000;

  function schedule(list) {
    if (list && list.hasAttribute("data-video-live")) {
      window.setTimeout(() => refresh(list), POLL_MS);
    }
  }

  function update(list, fresh) {
    const items = new Map(
      Array.from(list.querySelectorAll("[data-video-id]")).map((li) => [li.dataset.videoId, li]),
    );
    const none = list.querySelector("[data-video-none]");
    if (none && fresh.querySelector("[data-video-id]")) none.remove();
    for (const freshItem of fresh.querySelectorAll("[data-video-id]")) {
      const item = items.get(freshItem.dataset.videoId);
      if (!item) list.appendChild(freshItem);
      else if (item.dataset.videoVersion !== freshItem.dataset.videoVersion) {
        item.replaceWith(freshItem);
      }
    }
    if (fresh.hasAttribute("data-video-live")) list.setAttribute("data-video-live", "");
    else list.removeAttribute("data-video-live");
  }

  async function refresh(list) {
    try {
      const response = await fetch(list.dataset.url, {
        headers: { Accept: "text/html" }, credentials: "same-origin",
      });
      if (response.ok) {
        const doc = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = doc.querySelector("[data-video-list]");
        if (fresh) update(list, fresh);
      }
    } catch (error) {
      // A network blip: try again at the next tick.
    }
    schedule(list);
  }

  document.addEventListener("DOMContentLoaded", () => {
    schedule(document.querySelector("[data-video-list]"));
  });
})();
