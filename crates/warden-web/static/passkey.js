// Passkey ceremonies for Warden's pages. The server sends WebAuthn options as JSON
// (base64url fields); the browser's own JSON helpers turn them into a ceremony and back.
"use strict";

async function post(url, body, csrf) {
  const headers = { "content-type": "application/json" };
  if (csrf) headers["x-warden-csrf"] = csrf;
  const response = await fetch(url, { method: "POST", headers, body: JSON.stringify(body ?? {}), credentials: "same-origin" });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `the server answered ${response.status}`);
  return data;
}

function show(message, ok) {
  const out = document.getElementById("passkey-status");
  out.textContent = message;
  out.dataset.state = ok ? "ok" : "error";
}

async function register(button) {
  const csrf = button.dataset.csrf;
  const options = await post("/webauthn/register/start", {}, csrf);
  const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(options.publicKey);
  const credential = await navigator.credentials.create({ publicKey });
  const name = document.getElementById("passkey-name")?.value || "passkey";
  await post("/webauthn/register/finish", { name, credential: credential.toJSON() }, csrf);
}

async function assert(startUrl, finishUrl, body, csrf) {
  const options = await post(startUrl, body, csrf);
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey);
  const credential = await navigator.credentials.get({ publicKey });
  await post(finishUrl, { credential: credential.toJSON() }, csrf);
}

function wire(id, action) {
  const button = document.getElementById(id);
  if (!button) return;
  button.addEventListener("click", async (event) => {
    event.preventDefault();
    button.disabled = true;
    try {
      await action(button);
      show("Done.", true);
      window.location.assign(button.dataset.next || "/account");
    } catch (error) {
      show(error.message || String(error), false);
      button.disabled = false;
    }
  });
}

wire("passkey-register", register);
for (const button of document.querySelectorAll(".passkey-remove")) {
  button.addEventListener("click", async (event) => {
    event.preventDefault();
    button.disabled = true;
    try {
      await assert("/webauthn/remove/start", "/webauthn/remove/finish", { passkey: button.dataset.passkey }, button.dataset.csrf);
      window.location.assign("/account");
    } catch (error) {
      show(error.message || String(error), false);
      button.disabled = false;
    }
  });
}
wire("passkey-confirm", (b) => assert("/webauthn/assert/start", "/webauthn/assert/finish", {}, b.dataset.csrf));
wire("passkey-signin", () => assert("/auth/passkey/start", "/auth/passkey/finish", { user: document.getElementById("passkey-user").value }));
