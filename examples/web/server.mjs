// The example's server: it serves the game page, and stands in for the game's backend in
// one route, POST /game/sessions, which creates the player's session with the studio's API
// key. The key stays here; the page gets only the session, and acts on it with stamps of
// its own browser key. `latchkey dev` starts this server with the stack's endpoint, API key,
// policy and contract in the environment.

import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { create, fromBinary, toBinary, toJson } from "@bufbuild/protobuf";
import {
  ClientAccess,
  CreateSessionRequestSchema,
  KeyCustody,
  SessionSchema,
} from "./gen/latchkey/v1/session_pb.js";
import { SignerKind } from "./gen/latchkey/v1/signer_pb.js";
import { RpcError, unary } from "./public/grpc-web.js";

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set: latchkey dev sets it`);
  return value;
};
const ENDPOINT = env("LATCHKEY_ENDPOINT");
const API_KEY = env("LATCHKEY_API_KEY");
const POLICY = env("LATCHKEY_DEV_POLICY", "");
const GAME_ITEMS = env("LATCHKEY_GAME_ITEMS");
const CHAIN_ID = env("LATCHKEY_CHAIN_ID", "");
const [HOST, PORT] = env("WEB_LISTEN", "127.0.0.1:5173").split(/:(?=\d+$)/);

const here = fileURLToPath(new URL(".", import.meta.url));
// URL prefix → directory. The protobuf runtime comes from node_modules as ES modules.
const ROOTS = [
  ["/vendor/protobuf/", join(here, "node_modules/@bufbuild/protobuf/dist/esm/")],
  ["/gen/", join(here, "gen/")],
  ["/", join(here, "public/")],
];
const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
};
const HEX_POINT = /^0x04[0-9a-fA-F]{128}$/;

/** The game server's part: a READ_WRITE (or READ_ONLY) session for this player. */
async function createSession({ owner, sessionKey, access = "READ_WRITE", lifetimeSecs }) {
  if (!HEX_POINT.test(owner ?? "") || !HEX_POINT.test(sessionKey ?? "")) {
    throw new BadRequest("owner and sessionKey: each a P-256 public key, 0x04 ‖ x ‖ y in hex");
  }
  const clientAccess = { READ_WRITE: ClientAccess.READ_WRITE, READ_ONLY: ClientAccess.READ_ONLY }[access];
  if (clientAccess === undefined) throw new BadRequest("access: READ_WRITE or READ_ONLY");
  if (lifetimeSecs !== undefined && !(Number.isInteger(lifetimeSecs) && lifetimeSecs > 0)) {
    throw new BadRequest("lifetimeSecs: a whole number of seconds");
  }
  const request = create(CreateSessionRequestSchema, {
    ownerSigner: { kind: SignerKind.WEBAUTHN, key: owner },
    custody: KeyCustody.EXTERNAL,
    keySigner: { kind: SignerKind.P256, key: sessionKey },
    // Zero: latchkey's default lifetime, 15 minutes.
    validUntil: lifetimeSecs ? BigInt(Math.floor(Date.now() / 1000) + lifetimeSecs) : 0n,
    permissions: {
      callLimit: 100,
      // The most fees its operations may cost the account (the dev policy pays them).
      gasBudget: "1000000000000000000",
      calls: [{ target: GAME_ITEMS, function: "mint(address,uint256,uint256)" }],
    },
    policy: POLICY,
    clientAccess,
  });
  const answer = await unary(
    ENDPOINT,
    "/latchkey.v1.SessionService/CreateSession",
    toBinary(CreateSessionRequestSchema, request),
    { authorization: `Bearer ${API_KEY}` },
  );
  return toJson(SessionSchema, fromBinary(SessionSchema, answer));
}

class BadRequest extends Error {}

async function body(request) {
  const chunks = [];
  for await (const chunk of request) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
}

function send(response, status, type, content) {
  response.writeHead(status, { "content-type": type, "cache-control": "no-store" });
  response.end(content);
}

async function serveFile(response, path) {
  const [prefix, root] = ROOTS.find(([prefix]) => path.startsWith(prefix));
  const relative = path.slice(prefix.length) || "index.html";
  const file = resolve(root, normalize(relative));
  if (!file.startsWith(root)) return send(response, 403, "text/plain", "forbidden");
  try {
    send(response, 200, TYPES[extname(file)] ?? "application/octet-stream", await readFile(file));
  } catch {
    send(response, 404, "text/plain", "not found");
  }
}

const server = createServer(async (request, response) => {
  const path = new URL(request.url, "http://localhost").pathname;
  try {
    if (request.method === "POST" && path === "/game/sessions") {
      const session = await createSession(await body(request));
      return send(response, 200, TYPES[".json"], JSON.stringify(session));
    }
    if (path === "/config.json") {
      const config = { endpoint: ENDPOINT, gameItems: GAME_ITEMS, chainId: CHAIN_ID };
      return send(response, 200, TYPES[".json"], JSON.stringify(config));
    }
    if (request.method !== "GET") return send(response, 405, "text/plain", "method not allowed");
    return await serveFile(response, path);
  } catch (error) {
    const status = error instanceof BadRequest || error instanceof SyntaxError ? 400
      : error instanceof RpcError ? 502 : 500;
    send(response, status, TYPES[".json"], JSON.stringify({ error: error.message }));
  }
});

server.listen(Number(PORT), HOST, () => {
  console.log(`web example at http://localhost:${PORT}`);
});
