// The game page. The passkey creates the player's account and signs the session once;
// from then on the page acts alone with its non-extractable session key, every request
// stamped, until the session expires. The game's backend (server.mjs) only creates the
// session, with its API key, which never reaches the page.

import { RpcError } from "./grpc-web.js";
import { SessionClient, hex, signWith, unhex } from "./latchkey.js";
import { assert, createPasskey } from "./passkey.js";
import { SessionStatus } from "/gen/latchkey/v1/session_pb.js";
import { TransactionIntentStatus } from "/gen/latchkey/v1/transaction_intent_pb.js";
import { clear, load, save } from "./store.js";

const $ = (id) => document.getElementById(id);
const FINAL = new Set([
  "TRANSACTION_INTENT_STATUS_CONFIRMED",
  "TRANSACTION_INTENT_STATUS_REVERTED",
  "TRANSACTION_INTENT_STATUS_DROPPED",
  "TRANSACTION_INTENT_STATUS_EXPIRED",
]);
const statusName = (status) => `TRANSACTION_INTENT_STATUS_${TransactionIntentStatus[status] ?? status}`;

let config;
let state = {};

function log(text) {
  const item = document.createElement("li");
  item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $("log").append(item);
}

function say(text, kind = "") {
  $("status").textContent = text;
  $("status").className = kind;
}

function expired() {
  return state.validUntil !== undefined && Date.now() / 1000 > state.validUntil;
}

function render() {
  $("passkey").textContent = state.passkey?.credentialId ?? "none yet";
  $("account").textContent = state.account ?? "none yet";
  $("session").textContent = state.session ?? "none yet";
  $("expires").textContent = state.validUntil
    ? new Date(state.validUntil * 1000).toLocaleTimeString()
    : "–";
  $("minted").textContent = String(state.minted ?? 0);
  $("create-passkey").disabled = Boolean(state.passkey);
  $("start-session").disabled = !state.passkey || (Boolean(state.session) && !expired());
  $("mint").disabled = !state.active || expired();
}

function client() {
  return new SessionClient(config.endpoint, {
    session: state.session,
    privateKey: state.keys.privateKey,
    publicKey: state.publicKey,
  });
}

/** Says that the session is over, and why, when `error` says it ended. */
function ended(error) {
  if (expired() || (error instanceof RpcError && error.codeName === "UNAUTHENTICATED"
      && /ended|past its valid_until|EXPIRED/.test(error.detail))) {
    state.active = false;
    say("The session expired: start a new one (the passkey signs it).", "expired");
    render();
    return true;
  }
  return false;
}

async function step(action) {
  try {
    await action();
  } catch (error) {
    if (!ended(error)) {
      say(`Error: ${error.message}`, "error");
      log(`error: ${error.message}`);
    }
  }
  render();
}

/** The backend part makes the session; the page has only its keys' public halves. */
async function backendSession(access, owner, sessionKey) {
  const lifetime = new URLSearchParams(location.search).get("lifetime");
  const response = await fetch("/game/sessions", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      owner,
      sessionKey,
      access,
      ...(lifetime ? { lifetimeSecs: Number(lifetime) } : {}),
    }),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ?? `the game server answered ${response.status}`);
  return body;
}

/** A new non-extractable P-256 key pair, and its public key as latchkey reads it. */
async function newSessionKey() {
  const keys = await crypto.subtle.generateKey(
    { name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
  return { keys, publicKey: hex(await crypto.subtle.exportKey("raw", keys.publicKey)) };
}

async function onCreatePasskey() {
  say("Creating a passkey…");
  state.passkey = await createPasskey();
  await save(state);
  log(`passkey created: ${state.passkey.publicKey.slice(0, 18)}…`);
  say("Passkey created. Start a session.");
}

async function onStartSession() {
  say("Starting a session…");
  const { keys, publicKey } = await newSessionKey();
  const session = await backendSession("READ_WRITE", state.passkey.publicKey, publicKey);
  state = {
    passkey: state.passkey,
    keys,
    publicKey,
    session: session.name,
    account: session.account.replace("accounts/", ""),
    validUntil: Number(session.validUntil),
    minted: 0,
    active: false,
  };
  await save(state);
  log(`session ${session.name} created by the game server, READ_WRITE until ${new Date(state.validUntil * 1000).toLocaleTimeString()}`);
  say("The passkey signs the session's registration…");
  const webauthn = await assert(state.passkey.credentialId, session.nextAction.webauthnChallenge);
  await client().submitSessionSignature(webauthn);
  log("registration signed by the passkey");
  for (;;) {
    const current = await client().getSession();
    if (current.status === SessionStatus.ACTIVE) break;
    if (current.failureReason) throw new Error(`registration failed: ${current.failureReason}`);
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  state.active = true;
  await save(state);
  log("session ACTIVE on chain");
  say("Session active: mint items, no more touches needed.");
}

async function onMint() {
  const item = (state.minted ?? 0) + 1;
  say(`Minting item #${item}…`);
  const intent = await client().createIntent([{
    to: config.gameItems,
    call: {
      case: "functionCall",
      value: { signature: "mint(address,uint256,uint256)", args: [state.account, String(item), "1"] },
    },
  }]);
  log(`intent ${intent.name} created`);
  // Watch first: the stream's first message is the intent as it stands (waiting for its
  // signature), so every change after the signature is seen as it happens.
  const updates = client().watchIntent(intent.name);
  let last;
  const show = (update) => {
    last = statusName(update.status);
    log(`item #${item}: ${last}`);
    say(`Item #${item}: ${last}`);
  };
  const current = await updates.next();
  if (current.done) throw new Error(`the watch of ${intent.name} ended at once`);
  show(current.value);
  // Touch-free: the session key signs the intent's hash, as the account will check it.
  const signature = hex(await signWith(state.keys.privateKey, unhex(intent.nextAction.signableHash)));
  await client().submitIntentSignature(intent.name, signature);
  for await (const update of updates) {
    show(update);
    if (FINAL.has(last)) break;
  }
  if (last === "TRANSACTION_INTENT_STATUS_CONFIRMED") {
    state.minted = item;
    await save(state);
    say(`Item #${item} minted: TRANSACTION_INTENT_STATUS_CONFIRMED`);
  }
}

async function main() {
  config = await (await fetch("/config.json")).json();
  state = (await load()) ?? {};
  $("create-passkey").onclick = () => step(onCreatePasskey);
  $("start-session").onclick = () => step(onStartSession);
  $("mint").onclick = () => step(onMint);
  $("reset").onclick = () => step(async () => {
    await clear();
    state = {};
    $("log").replaceChildren();
    say("Forgotten. Create a passkey to start.");
  });
  if (!state.passkey) {
    say("Create a passkey to start.");
  } else if (!state.session) {
    say("Passkey found. Start a session.");
  } else if (expired()) {
    state.active = false;
    say("The session expired: start a new one (the passkey signs it).", "expired");
  } else {
    await step(async () => {
      // Resumed from IndexedDB: the same key, the same session, no touch.
      const current = await client().getSession();
      state.active = current.status === SessionStatus.ACTIVE;
      log(`session resumed from this browser: ${state.session}`);
      say(state.active ? "Session resumed: mint items." : "Session found, not active yet.");
    });
  }
  render();
  // Expiry needs no request to notice.
  setInterval(() => {
    if (state.active && expired()) ended();
  }, 1000);
}

// For the browser test and the curious: the page's parts, to try what a client may not do.
window.latchkeyExample = {
  SessionClient, RpcError, newSessionKey, backendSession, signWith, hex, unhex,
  get config() { return config; },
  get state() { return state; },
};

main().then(() => document.body.setAttribute("data-ready", "true"));
