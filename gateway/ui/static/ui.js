// The run browser's only script: local times, and live refresh of the parts marked data-live.
"use strict";

(function () {
  function localizeTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var moment = new Date(el.getAttribute("datetime"));
      if (isNaN(moment.getTime())) return;
      el.textContent = moment.toLocaleString(undefined, {
        year: "numeric", month: "short", day: "numeric",
        hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short"
      });
    });
  }

  function openDetails(region) {
    var open = [];
    region.querySelectorAll("details[open][id]").forEach(function (d) { open.push(d.id); });
    return open;
  }

  function swap(fresh) {
    document.querySelectorAll("[data-live][id]").forEach(function (old) {
      var replacement = fresh.getElementById(old.id);
      if (!replacement || replacement.innerHTML === old.dataset.source) return;
      if (old.contains(document.activeElement) && document.activeElement !== document.body) return;
      var open = openDetails(old);
      var source = replacement.innerHTML;
      old.innerHTML = source;
      old.dataset.source = source;
      open.forEach(function (id) {
        var d = document.getElementById(id);
        if (d) d.open = true;
      });
      localizeTimes(old);
    });
  }

  function refresh(seconds) {
    var timer = window.setTimeout(function tick() {
      if (document.hidden) { timer = window.setTimeout(tick, seconds * 1000); return; }
      fetch(window.location.href, { credentials: "same-origin", headers: { "X-Live-Refresh": "1" } })
        .then(function (response) {
          // Signed out meanwhile (the answer is the sign-in page): stop, keep what is shown.
          if (!response.ok || response.redirected) throw new Error("stopped");
          return response.text();
        })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html");
          swap(fresh);
          document.body.dataset.state = "fresh";
          var next = fresh.body.dataset.refresh;
          if (next) {
            timer = window.setTimeout(tick, Number(next) * 1000);
          } else {
            delete document.body.dataset.refresh;
            document.body.dataset.state = "final";
          }
        })
        .catch(function () { document.body.dataset.state = "stopped"; });
    }, seconds * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    localizeTimes(document);
    document.querySelectorAll("[data-live][id]").forEach(function (el) {
      el.dataset.source = el.innerHTML;
    });
    var seconds = Number(document.body.dataset.refresh);
    if (seconds > 0) refresh(seconds);
  });
})();
