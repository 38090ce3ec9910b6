// The Connect pages work without this script; it adds the two conveniences that need one:
// showing a typed secret, and copying the webhook URL.
"use strict";

function setUpReveal(button) {
  const input = document.getElementById(button.getAttribute("aria-controls"));
  if (!input) return;
  button.hidden = false;
  button.addEventListener("click", () => {
    const show = input.type === "password";
    input.type = show ? "text" : "password";
    button.setAttribute("aria-pressed", String(show));
  });
  // never submit a secret field as plain text: a browser may remember those
  if (input.form) input.form.addEventListener("submit", () => { input.type = "password"; });
}

function setUpCopy(button) {
  const field = document.getElementById(button.getAttribute("aria-controls"));
  const status = document.getElementById(button.dataset.status);
  if (!field || !status) return;
  button.hidden = false;
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(field.value);
      status.textContent = "Copied to the clipboard.";
    } catch {
      field.focus();
      field.select();
      status.textContent = "Selected: press Ctrl+C (or Cmd+C) to copy.";
    }
  });
}

document.querySelectorAll("button[data-reveal]").forEach(setUpReveal);
document.querySelectorAll("button[data-copy]").forEach(setUpCopy);
