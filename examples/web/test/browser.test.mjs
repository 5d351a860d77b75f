// The web example in a real browser: Debian's Chromium, headless, driven by playwright-core,
// against a real `latchkey dev` stack (anvil, the contracts, the daemon, this example's
// server). A CDP virtual authenticator stands in for the player's device. Screenshots of
// each step land in target/web-test/.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = fileURLToPath(new URL(".", import.meta.url));
const repo = resolve(here, "../../..");
const LATCHKEY = process.env.LATCHKEY_BIN ?? join(repo, "target/debug/latchkey");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SHOTS = join(repo, "target/web-test");
// Long enough to register and mint before the daemon's 30 s margin refuses new intents,
// short enough to wait out.
const LIFETIME_SECS = 75;

/** A port nothing listens on now. */
function freePort() {
  return new Promise((done, fail) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
    server.on("error", fail);
  });
}

/** Starts `latchkey dev` on free ports; resolves once the web example answers. */
async function startStack(dir) {
  const [grpc, admin, metrics, anvil, web] = await Promise.all(
    Array.from({ length: 5 }, freePort),
  );
  const child = spawn(
    LATCHKEY,
    [
      "dev",
      "--listen", `127.0.0.1:${grpc}`,
      "--admin-listen", `127.0.0.1:${admin}`,
      "--metrics-listen", `127.0.0.1:${metrics}`,
      "--anvil-port", String(anvil),
      "--web-listen", `127.0.0.1:${web}`,
      "--web-dir", join(repo, "examples/web"),
      "--data-dir", join(dir, "store"),
      "--env-file", join(dir, "dev.env"),
    ],
    { cwd: repo, detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "warn" } },
  );
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  const stack = {
    child,
    grpc,
    rpc: `http://127.0.0.1:${anvil}`,
    url: `http://localhost:${web}`,
    output: () => output,
    stop() {
      // The whole group: latchkey, its anvil and the example's server.
      try { process.kill(-child.pid, "SIGTERM"); } catch { /* already gone */ }
    },
  };
  const deadline = Date.now() + 180_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`latchkey dev exited:\n${output}`);
    try {
      if ((await fetch(`${stack.url}/config.json`)).ok) return stack;
    } catch { /* not up yet */ }
    await new Promise((done) => setTimeout(done, 250));
  }
  stack.stop();
  throw new Error(`latchkey dev did not come up:\n${output}`);
}

/** The account's balance of GameItems item `id`, read from the chain. */
async function itemBalance(rpc, gameItems, account, id) {
  const word = (value) => value.toString(16).padStart(64, "0");
  // balanceOf(address,uint256)
  const data = "0x00fdd58e" + word(BigInt(account)) + word(BigInt(id));
  const response = await fetch(rpc, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_call", params: [{ to: gameItems, data }, "latest"] }),
  });
  const { result, error } = await response.json();
  if (error) throw new Error(error.message);
  return BigInt(result);
}

test("a passkey player registers a session, mints from the browser, resumes, and expires", { timeout: 600_000 }, async (t) => {
  rmSync(SHOTS, { recursive: true, force: true });
  mkdirSync(SHOTS, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), "latchkey-web-"));
  const stack = await startStack(dir);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  t.after(async () => {
    await browser.close();
    stack.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  let shot = 0;
  const screenshot = async (name) => {
    shot += 1;
    await page.screenshot({ path: join(SHOTS, `${String(shot).padStart(2, "0")}-${name}.png`), fullPage: true });
  };
  const status = page.locator("#status");
  // Waits until the page's status says `text`; else fails with what the page showed.
  const until = async (text, timeout = 60_000) => {
    try {
      await status.filter({ hasText: text }).waitFor({ timeout });
    } catch (error) {
      await screenshot("failure");
      const shown = await status.innerText();
      const log = await page.locator("#log").innerText();
      throw new Error(`waiting for "${text}", the page says "${shown}"\n${log}\n${stack.output()}`);
    }
  };

  // The player's device: a platform authenticator with resident keys and user verification.
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });

  await page.goto(`${stack.url}/?lifetime=${LIFETIME_SECS}`);
  await page.waitForSelector("body[data-ready=true]");
  await screenshot("start");

  // 1. The passkey: created on the virtual device, resident, verified.
  await page.click("#create-passkey");
  await until("Passkey created");
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  assert.equal(credentials.length, 1, "one passkey on the device");
  assert.equal(credentials[0].isResidentCredential, true);
  await screenshot("passkey-created");

  // 2. The session: the game server creates it, the passkey signs its registration.
  await page.click("#start-session");
  await until("Session active");
  const state = await page.evaluate(() => ({
    session: window.latchkeyExample.state.session,
    account: window.latchkeyExample.state.account,
    gameItems: window.latchkeyExample.config.gameItems,
    extractable: window.latchkeyExample.state.keys.privateKey.extractable,
  }));
  assert.match(state.session, /^sessions\/ses_/);
  assert.equal(state.extractable, false, "the session key cannot leave the browser");
  await screenshot("session-active");

  // 3. Three mints, each signed touch-free and watched to CONFIRMED.
  for (const item of [1, 2, 3]) {
    await page.click("#mint");
    await until(`Item #${item} minted: TRANSACTION_INTENT_STATUS_CONFIRMED`);
    await screenshot(`minted-${item}`);
  }
  // Each mint's statuses as the page showed them while they streamed: from waiting for its
  // signature, through the relay's steps, to CONFIRMED.
  const log = await page.locator("#log").innerText();
  for (const item of [1, 2, 3]) {
    const shown = [...log.matchAll(new RegExp(`item #${item}: TRANSACTION_INTENT_STATUS_(\\w+)`, "g"))]
      .map((match) => match[1]);
    assert.equal(shown[0], "PENDING_SIGNATURE", `item ${item}: ${shown}`);
    assert.equal(shown.at(-1), "CONFIRMED", `item ${item}: ${shown}`);
    assert.ok(shown.length >= 3, `item ${item} streamed its way to CONFIRMED: ${shown}`);
  }
  for (const item of [1, 2, 3]) {
    assert.equal(await itemBalance(stack.rpc, state.gameItems, state.account, item), 1n, `item ${item} on chain`);
  }

  // 4. A reload resumes from IndexedDB: the same key and session, no touch, and it mints.
  await page.reload();
  await page.waitForSelector("body[data-ready=true]");
  await until("Session resumed");
  assert.equal(await page.evaluate(() => window.latchkeyExample.state.session), state.session);
  await screenshot("resumed");
  await page.click("#mint");
  await until("Item #4 minted: TRANSACTION_INTENT_STATUS_CONFIRMED");
  assert.equal(await itemBalance(stack.rpc, state.gameItems, state.account, 4), 1n);
  await screenshot("minted-after-reload");

  // 5. A READ_ONLY session reads, and is refused a write.
  const readOnly = await page.evaluate(async () => {
    const { SessionClient, newSessionKey, backendSession, config, state } = window.latchkeyExample;
    const { keys, publicKey } = await newSessionKey();
    const session = await backendSession("READ_ONLY", state.passkey.publicKey, publicKey);
    const client = new SessionClient(config.endpoint, { session: session.name, privateKey: keys.privateKey, publicKey });
    const read = await client.getSession();
    try {
      await client.createIntent([{
        to: config.gameItems,
        call: { case: "functionCall", value: { signature: "mint(address,uint256,uint256)", args: [session.account.slice(9), "9", "1"] } },
      }]);
      return { read: read.name, refused: null };
    } catch (error) {
      return { read: read.name, refused: error.codeName, message: error.detail };
    }
  });
  assert.match(readOnly.read, /^sessions\/ses_/);
  assert.equal(readOnly.refused, "PERMISSION_DENIED", readOnly.message);
  assert.match(readOnly.message, /needs CLIENT_ACCESS_READ_WRITE/);

  // 6. Past valid_until the session is over: latchkey refuses its stamps, and the page says so,
  // after a reload too.
  const validUntil = await page.evaluate(() => window.latchkeyExample.state.validUntil);
  const wait = validUntil * 1000 + 1500 - Date.now();
  if (wait > 0) await new Promise((done) => setTimeout(done, wait));
  const refused = await page.evaluate(async () => {
    const { SessionClient, config, state } = window.latchkeyExample;
    const client = new SessionClient(config.endpoint, { session: state.session, privateKey: state.keys.privateKey, publicKey: state.publicKey });
    try {
      await client.getSession();
      return null;
    } catch (error) {
      return { code: error.codeName, message: error.detail };
    }
  });
  assert.equal(refused?.code, "UNAUTHENTICATED", JSON.stringify(refused));
  assert.match(refused.message, /client access ended/);
  await until("The session expired");
  await screenshot("expired");
  await page.reload();
  await page.waitForSelector("body[data-ready=true]");
  await until("The session expired");
  assert.equal(await page.locator("#mint").isDisabled(), true);
  await screenshot("expired-after-reload");

  assert.deepEqual(errors, [], "no uncaught errors in the page");
});
