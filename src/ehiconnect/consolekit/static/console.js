// Live parts of console pages, without a framework: an element with data-live-url is replaced
// by the HTML fragment at that URL every data-live-every milliseconds (default 2000), until the
// fragment it receives no longer asks for more (it has no data-live-url).
(function () {
  "use strict";
  function poll(element) {
    var url = element.getAttribute("data-live-url");
    var every = parseInt(element.getAttribute("data-live-every") || "2000", 10);
    if (!url) { return; }
    window.setTimeout(function () {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (text) {
          if (text === null) { return; }
          var holder = document.createElement("div");
          holder.innerHTML = text;
          var fresh = holder.firstElementChild;
          if (!fresh) { return; }
          element.replaceWith(fresh);
          poll(fresh);
        })
        .catch(function () { poll(element); });
    }, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live-url]").forEach(poll);
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
  });
})();
