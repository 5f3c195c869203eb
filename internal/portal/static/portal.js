// pbxd portal: the only two things that need JavaScript. Everything else is
// plain forms and links.
(function () {
  "use strict";
  var csrf = (document.querySelector('meta[name="csrf"]') || {}).content || "";
  var lang = document.documentElement.lang || "en";

  // Line passwords: fetched on demand when the cell is hovered or focused
  // (each reveal is audited by the server), hidden again on leave.
  document.querySelectorAll(".pw[data-url]").forEach(function (el) {
    var hidden = el.textContent, pending = false;
    function show() {
      if (pending) { return; }
      pending = true;
      fetch(el.dataset.url, { headers: { "X-CSRF-Token": csrf }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (j) { if (pending) { el.textContent = j.password; } })
        .catch(function () { pending = false; });
    }
    function hide() { pending = false; el.textContent = hidden; }
    el.addEventListener("mouseenter", show);
    el.addEventListener("focus", show);
    el.addEventListener("mouseleave", hide);
    el.addEventListener("blur", hide);
  });

  function fmt(minor, cur) {
    return new Intl.NumberFormat(lang === "fr" ? "fr-FR" : "en-GB", { style: "currency", currency: cur }).format(minor / 100);
  }

  // Live prices: any [data-unit] quantity input updates its [data-total]
  // output as unit × quantity.
  function recompute(scope) {
    scope.querySelectorAll("[data-total-for]").forEach(function (out) {
      var inp = document.getElementById(out.dataset.totalFor);
      if (!inp) { return; }
      var checked = scope.querySelector("input[name=cycle]:checked");
      var unit = parseInt(inp.dataset.unit || (checked ? checked.dataset.unit : ""), 10);
      var qty = parseInt(inp.value, 10) || 0;
      if (!isNaN(unit)) { out.textContent = fmt(unit * qty, out.dataset.currency); }
    });
  }
  document.querySelectorAll("form.live").forEach(function (form) {
    form.addEventListener("input", function () { recompute(form); });
    form.addEventListener("change", function () {
      var sel = form.querySelector("input[name=cycle]:checked");
      if (sel) {
        form.querySelectorAll("[data-unit-from-cycle]").forEach(function (inp) { inp.dataset.unit = sel.dataset.unit; });
        form.querySelectorAll("[data-unit-out]").forEach(function (out) { out.textContent = fmt(parseInt(sel.dataset.unit, 10), out.dataset.currency); });
      }
      recompute(form);
    });
    form.querySelectorAll("button[data-step]").forEach(function (b) {
      b.addEventListener("click", function (e) {
        e.preventDefault();
        var inp = document.getElementById(b.dataset.target);
        var v = (parseInt(inp.value, 10) || 0) + parseInt(b.dataset.step, 10);
        inp.value = Math.max(parseInt(inp.min || "0", 10), v);
        recompute(form);
      });
      b.hidden = false;
    });
    recompute(form);
  });

  // Add/Modify: ticking "delete" moves the new configuration column at once.
  var modify = document.querySelector("form.modify");
  if (modify) {
    var update = function () {
      modify.querySelectorAll("[data-new-for]").forEach(function (cell) {
        var code = cell.dataset.newFor, n = parseInt(cell.dataset.current, 10);
        modify.querySelectorAll("tr[data-line]").forEach(function (tr) {
          var del = tr.querySelector("input[type=checkbox]").checked;
          var plan = tr.querySelector("select").value, from = tr.dataset.package;
          if (del && from === code) { n--; }
          else if (!del && plan !== from) { if (from === code) { n--; } if (plan === code) { n++; } }
        });
        var add = modify.querySelector('input[name="add.' + code + '"]');
        if (add) { n += parseInt(add.value, 10) || 0; }
        cell.textContent = Math.max(0, n);
      });
    };
    modify.addEventListener("change", update);
    modify.addEventListener("input", update);
  }
})();
