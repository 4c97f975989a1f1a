// band panel: the User page's "Forget this person" button (POST /api/forget), kept apart from panel.js.
// It forgets the person the page shows (every identifier joined to them), after the operator
// types the person's id again.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const title = document.querySelector("#person-title");
  if (!title) return;
  const button = document.createElement("button");
  button.type = "button";
  button.className = "danger";
  button.id = "user-forget";
  button.textContent = "Forget this person…";
  title.after(button);
  button.onclick = async () => {
    const person = document.querySelector("#person").dataset.person;
    const status = document.querySelector("#user-status");
    if (!person) { status.textContent = "show a person first: type any of their identifiers and press Show"; status.className = "bad"; return; }
    const typed = prompt(`Forget person ${person}: every event, stream message, dead letter and segment of theirs, on every device and identifier joined to them, is deleted for good. Type ${person} to confirm.`);
    if (typed === null) return;
    status.textContent = "forgetting…";
    status.className = "muted";
    try {
      const resp = await fetch("/api/forget", { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ person, confirm: typed.trim() }) });
      const r = await resp.json();
      if (!resp.ok) throw new Error(r.error || `${resp.status}`);
      status.textContent = `forgotten: ${r.rows_total} rows, ${r.stream} stream messages, ${r.dead_letters} dead letters, ${r.redis ?? "no"} Redis segments; ${r.tombstones} new tombstones (${r.seconds} s)`;
      status.className = "";
      document.querySelector("#person").classList.add("hidden");
      document.querySelector("#user-timeline tbody").innerHTML = "";
    } catch (e) {
      status.textContent = e.message;
      status.className = "bad";
    }
  };
});
