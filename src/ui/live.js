// Refreshes the page's main content when the bot has processed something, without a reload.
// The page works without this script; it only saves pressing reload.
"use strict";
(function () {
  const badge = document.getElementById("live");
  const main = document.getElementById("main");
  if (!badge || !main) return;
  let seen = null;
  let busy = false;

  function typing() {
    const a = document.activeElement;
    return a && (a.tagName === "INPUT" || a.tagName === "SELECT" || a.tagName === "TEXTAREA");
  }

  async function refresh() {
    const page = await fetch(location.href, { credentials: "same-origin" });
    if (!page.ok) return;
    const doc = new DOMParser().parseFromString(await page.text(), "text/html");
    const fresh = doc.getElementById("main");
    if (fresh) main.replaceChildren(...fresh.childNodes);
  }

  async function poll() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const r = await fetch("/ui/live", { credentials: "same-origin", cache: "no-store" });
      if (!r.ok) throw new Error(String(r.status));
      const version = await r.text();
      if (seen !== null && version !== seen && !typing()) {
        badge.dataset.state = "updating";
        await refresh();
      }
      seen = version;
      badge.dataset.state = "on";
    } catch (e) {
      badge.dataset.state = "off";
    } finally {
      busy = false;
    }
  }

  poll();
  setInterval(poll, 2000);
})();
