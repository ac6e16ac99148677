/* Flashbot dashboard: refreshes the live fan-out section (#live) from /admin/live without reloading
   the page — every second while something is being sent, every 10 seconds otherwise, slower when the
   tab is hidden. Served from our own origin and loaded with the page's CSP nonce; the page works
   without it (it then reloads itself while a fan-out runs). */
(function () {
  "use strict";
  var FAST = 1000, SLOW = 10000, HIDDEN = 30000, MAX_BACKOFF = 30000;
  var live = document.getElementById("live");
  var timer = null, failures = 0, stopped = false, busy = false;
  if (!live || !window.fetch || !window.DOMParser) {
    return;
  }
  document.documentElement.className += " js";

  function say(attr) {
    var status = document.getElementById("live-status");
    if (status && live.getAttribute(attr)) {
      status.textContent = live.getAttribute(attr);
      if (status.className.indexOf("live-warn") < 0) { status.className += " live-warn"; }
    }
  }

  function schedule(delay) {
    clearTimeout(timer);
    if (stopped) {
      return;
    }
    if (delay === undefined) {
      /* The server says how soon to ask again (sooner while a fan-out runs, later when counting it is costly). */
      delay = document.hidden ? HIDDEN : (parseInt(live.getAttribute("data-refresh"), 10) ||
                                          (live.getAttribute("data-running") === "1" ? FAST : SLOW));
    }
    timer = setTimeout(refresh, delay);
  }

  function swap(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
    if (fresh) {
      live.parentNode.replaceChild(document.importNode(fresh, true), live);
      live = document.getElementById("live");
    }
  }

  function refresh() {
    if (busy) {
      return;
    }
    busy = true;
    fetch("/admin/live", {credentials: "same-origin", cache: "no-store", redirect: "error",
                          headers: {"Accept": "text/html"}})
      .then(function (response) {
        if (response.status === 401) {
          stopped = true;
          say("data-expired");
          return null;
        }
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        busy = false;
        if (html !== null) {
          failures = 0;
          swap(html);
          schedule();
        }
      })
      .catch(function () {
        busy = false;
        failures += 1;
        say("data-retrying");
        schedule(Math.min(MAX_BACKOFF, FAST * Math.pow(2, failures)));
      });
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && !stopped) {
      refresh();
    }
  });
  schedule();
}());
