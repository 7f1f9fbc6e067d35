// Search as you type: suggestions under the search box, from /ui/suggest (JSON). The page works
// without this file (the form submits to /ui/search). Names are put in the page as text nodes,
// never as markup. Loaded from this server only (the content security policy allows no other).
"use strict";
(function () {
  function attach(input) {
    var list = document.getElementById(input.getAttribute("aria-controls"));
    if (!list) { return; }
    var timer = null;
    var asked = "";
    function close() { list.hidden = true; input.setAttribute("aria-expanded", "false"); }
    function show(items) {
      while (list.firstChild) { list.removeChild(list.firstChild); }
      items.forEach(function (item, i) {
        var li = document.createElement("li");
        var a = document.createElement("a");
        a.href = item.url;
        a.textContent = item.name + (item.index ? " (" + item.index + ")" : "");
        a.id = list.id + "-" + i;
        a.setAttribute("role", "option");
        li.appendChild(a);
        list.appendChild(li);
      });
      list.hidden = items.length === 0;
      input.setAttribute("aria-expanded", items.length ? "true" : "false");
    }
    function ask() {
      var q = input.value.trim();
      if (q === asked) { return; }
      asked = q;
      if (q.length < 2) { close(); return; }
      var url = input.getAttribute("data-suggest") + "?q=" + encodeURIComponent(q);
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : { results: [] }; })
        .then(function (body) { if (input.value.trim() === q) { show(body.results || []); } })
        .catch(close);
    }
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(ask, 120);
    });
    input.addEventListener("keydown", function (event) {
      var links = list.querySelectorAll("a");
      if (list.hidden || !links.length) { return; }
      var current = list.querySelector("a[aria-selected=true]");
      var at = Array.prototype.indexOf.call(links, current);
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        if (current) { current.removeAttribute("aria-selected"); }
        at = event.key === "ArrowDown" ? Math.min(at + 1, links.length - 1) : Math.max(at - 1, 0);
        links[at].setAttribute("aria-selected", "true");
        input.setAttribute("aria-activedescendant", links[at].id);
      } else if (event.key === "Enter" && current) {
        event.preventDefault();
        window.location.assign(current.href);
      } else if (event.key === "Escape") {
        close();
      }
    });
    input.addEventListener("blur", function () { setTimeout(close, 200); });
  }
  document.querySelectorAll("input[data-suggest]").forEach(attach);
})();
