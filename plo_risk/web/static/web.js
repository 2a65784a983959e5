// plo_risk clinician's page: small progressive enhancements. Everything works
// without this script (plain form posts); with it, the unit hint follows the
// chosen unit, the what-if answer comes from the JSON API in place, and the
// summary prints.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function ready(fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }

  function percent(p) {
    var x = 100 * p;
    if (x >= 10) { return x.toFixed(0) + "%"; }
    if (x >= 1) { return x.toFixed(1) + "%"; }
    if (x >= 0.1) { return x.toFixed(2) + "%"; }
    return x > 0 ? x.toPrecision(2) + "%" : "0%";
  }

  ready(function () {
    var summary = document.getElementById("error-summary");
    if (summary) { summary.focus(); }

    document.querySelectorAll("select[data-hint-for]").forEach(function (sel) {
      sel.addEventListener("change", function () {
        var hint = document.getElementById("range-" + sel.getAttribute("data-hint-for"));
        var opt = sel.options[sel.selectedIndex];
        if (hint && opt) { hint.textContent = opt.getAttribute("data-hint"); }
      });
    });

    var printButton = document.getElementById("print");
    if (printButton) { printButton.addEventListener("click", function () { window.print(); }); }

    var form = document.getElementById("what-if-form");
    var out = document.getElementById("what-if-result");
    if (!form || !out || !window.fetch) { return; }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var record = {}, units = {}, changes = {};
      form.querySelectorAll("input[data-record]").forEach(function (el) { record[el.getAttribute("data-record")] = el.value; });
      form.querySelectorAll("input[data-unit]").forEach(function (el) { units[el.getAttribute("data-unit")] = el.value; });
      form.querySelectorAll("[name^='whatif__']").forEach(function (el) {
        var v = el.value.trim();
        if (v !== "") { changes[el.name.slice(8)] = v.replace(/^(-?\d+),(\d+)$/, "$1.$2"); }
      });
      if (Object.keys(changes).length === 0) {
        out.innerHTML = "";
        var p0 = document.createElement("p");
        p0.className = "error-message";
        p0.textContent = "Choose at least one change.";
        out.appendChild(p0);
        return;
      }
      out.setAttribute("aria-busy", "true");
      fetch("/api/what-if", {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        credentials: "same-origin",
        body: JSON.stringify({ record: record, units: units, changes: changes })
      }).then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      }).then(function (res) {
        out.innerHTML = "";
        var p = document.createElement("p");
        if (!res.ok) {
          var detail = res.body.detail;
          p.className = "error-message";
          p.textContent = Array.isArray(detail) ? detail.map(function (d) { return d.msg; }).join("; ") : String(detail);
          out.appendChild(p);
          return;
        }
        p.className = "what-if-line";
        p.appendChild(document.createTextNode("Changed: " + res.body.description + ". "));
        res.body.rows.after.forEach(function (row, i) {
          var before = res.body.rows.before[i];
          if (i > 0) { p.appendChild(document.createTextNode("; ")); }
          p.appendChild(document.createTextNode("Risk of a " + row.label + " "));
          var strong = document.createElement("strong");
          strong.className = "risk";
          strong.id = "what-if-risk-" + i;
          strong.setAttribute("data-risk", String(row.risk));
          strong.textContent = percent(row.risk);
          p.appendChild(strong);
          p.appendChild(document.createTextNode(" (" + row.natural_frequency + "), was " + percent(before.risk)));
        });
        p.appendChild(document.createTextNode("."));
        out.appendChild(p);
      }).catch(function () {
        out.textContent = "The new estimate could not be fetched; send the form without the script by reloading the page.";
      }).then(function () { out.removeAttribute("aria-busy"); });
    });
  });
})();
