/*
 * Keeps the job page's progress card current without a reload: every POLL_MS it fetches
 * the card from data-url (the server renders it, so there is one template for both) and
 * updates the card in place: only the text and attributes that changed are touched, so
 * keyboard focus stays on the button it was on and the live region is the same element,
 * announcing only what changed. When the job's status changes (queued → running, or
 * running → done/failed), the whole page reloads, so the viewer, the downloads and the
 * charts of a finished job appear. Without JavaScript the page still works: reload it.
 */
(function () {
  "use strict";
  const POLL_MS = 2000;

  function schedule(card) {
    if (!card || !card.hasAttribute("data-job-live")) return;
    window.setTimeout(() => refresh(card), POLL_MS);
  }

  function sameKind(a, b) {
    return a.nodeType === b.nodeType && a.nodeName === b.nodeName;
  }

  function syncAttributes(node, fresh) {
    for (const { name } of Array.from(node.attributes)) {
      if (!fresh.hasAttribute(name)) node.removeAttribute(name);
    }
    for (const { name, value } of Array.from(fresh.attributes)) {
      if (node.getAttribute(name) !== value) node.setAttribute(name, value);
    }
    // <progress value> is a property too; the attribute alone may not move the bar.
    if (node instanceof HTMLProgressElement) node.value = fresh.value;
  }

  // Make `node`'s subtree match `fresh`'s, keeping every node whose kind is unchanged.
  function morph(node, fresh) {
    if (node.nodeType === Node.TEXT_NODE || node.nodeType === Node.COMMENT_NODE) {
      if (node.nodeValue !== fresh.nodeValue) node.nodeValue = fresh.nodeValue;
      return;
    }
    syncAttributes(node, fresh);
    const kids = Array.from(node.childNodes);
    const freshKids = Array.from(fresh.childNodes);
    freshKids.forEach((freshKid, i) => {
      const kid = kids[i];
      if (!kid) node.appendChild(freshKid);
      else if (sameKind(kid, freshKid)) morph(kid, freshKid);
      else kid.replaceWith(freshKid);
    });
    kids.slice(freshKids.length).forEach((kid) => kid.remove());
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
    const fresh = new DOMParser().parseFromString(html, "text/html")
      .getElementById("job-progress");
    if (!fresh) return schedule(card);
    if (fresh.dataset.jobStatus !== card.dataset.jobStatus) {
      window.location.reload();
      return;
    }
    morph(card, fresh);
    schedule(card);
  }

  function init() {
    schedule(document.getElementById("job-progress"));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
