// band panel: the User page's "Forget this person" button (POST /api/forget), kept apart from panel.js.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("#user-form");
  if (!form) return;
  const button = document.createElement("button");
  button.type = "button";
  button.className = "danger";
  button.id = "user-forget";
  button.textContent = "Forget this person…";
  form.querySelector("button[type=submit]").after(" ", button);
  button.onclick = async () => {
    const value = document.querySelector("#user-id").value.trim();
    const chosen = document.querySelector("#user-kind").value;
    const kind = chosen === "auto" ? (/^[0-9]{10,22}$/.test(value) ? "uid" : "user_id") : chosen;
    const status = document.querySelector("#user-status");
    if (!value) { status.textContent = "type the uid or user id of the person to forget"; status.className = "bad"; return; }
    const typed = prompt(`Forget ${kind === "uid" ? "uid" : "user id"} ${value}: every event, stream message, dead letter and segment of this person and of every identifier joined to them is deleted, for good. Type ${value} to confirm.`);
    if (typed === null) return;
    status.textContent = "forgetting…";
    status.className = "muted";
    try {
      const resp = await fetch("/api/forget", { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ [kind]: value, confirm: typed.trim() }) });
      const r = await resp.json();
      if (!resp.ok) throw new Error(r.error || `${resp.status}`);
      status.textContent = `forgotten: ${r.rows_total} rows, ${r.stream} stream messages, ${r.dead_letters} dead letters, ${r.redis ?? "no"} Redis segments; ${r.tombstones} new tombstones (${r.seconds} s)`;
      status.className = "";
      document.querySelector("#user-timeline tbody").innerHTML = "";
    } catch (e) {
      status.textContent = e.message;
      status.className = "bad";
    }
  };
});
