// Small conveniences for Warden's console; every page works without them.
"use strict";

// Each cell names its column, for the phone's card layout (console.css).
function labelCells(root) {
  for (const table of root.querySelectorAll("table")) {
    const names = Array.from(table.querySelectorAll("thead th"), (th) => th.textContent.trim());
    for (const row of table.querySelectorAll("tbody tr")) {
      Array.from(row.children).forEach((cell, i) => {
        if (names[i] && !cell.dataset.label) cell.dataset.label = names[i];
      });
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const main = document.querySelector("main");
  if (main) labelCells(main);
  // "Select all" for bulk decisions.
  for (const all of document.querySelectorAll("input[data-select-all]")) {
    all.addEventListener("change", () => {
      for (const box of document.querySelectorAll(`input[name="${all.dataset.selectAll}"]`)) {
        box.checked = all.checked;
      }
    });
  }
  // Live updates: a region marked data-refresh is fetched again every few seconds and
  // replaced when it changed (the approvals inbox, live sessions).
  for (const region of document.querySelectorAll("[data-refresh]")) {
    const seconds = Number(region.dataset.refresh) || 10;
    setInterval(async () => {
      // Not while the page is hidden, nor while someone is typing or choosing in it.
      if (document.hidden || region.contains(document.activeElement)) return;
      try {
        const response = await fetch(window.location.href, {
          credentials: "same-origin",
          headers: { "x-warden-refresh": "1" },
        });
        if (!response.ok) return;
        const doc = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = doc.getElementById(region.id);
        if (fresh) labelCells(fresh);
        if (fresh && fresh.innerHTML !== region.innerHTML) region.innerHTML = fresh.innerHTML;
      } catch (_) {
        // Offline for a moment: the next tick tries again.
      }
    }, seconds * 1000);
  }
});
