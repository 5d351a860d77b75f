// The player's client of latchkey: every call is stamped with the session key, a P-256
// key the browser made non-extractable. The stamp signs the method, the session, the time,
// a fresh nonce and the exact message bytes, so it is good for this one request only.

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  GetSessionRequestSchema,
  SessionSchema,
  SubmitSessionSignatureRequestSchema,
} from "/gen/latchkey/v1/session_pb.js";
import {
  CreateTransactionIntentRequestSchema,
  SubmitIntentSignatureRequestSchema,
  TransactionIntentSchema,
  WatchTransactionIntentRequestSchema,
} from "/gen/latchkey/v1/transaction_intent_pb.js";
import { call, unary } from "./grpc-web.js";

const encoder = new TextEncoder();

/** Lowercase hex of `bytes`, 0x-prefixed. */
export function hex(bytes) {
  return "0x" + Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The bytes of 0x-prefixed hex. */
export function unhex(text) {
  const digits = text.startsWith("0x") ? text.slice(2) : text;
  return Uint8Array.from(digits.match(/../g) ?? [], (pair) => parseInt(pair, 16));
}

/** A random nonce: 32 hex digits. */
function nonce() {
  return hex(crypto.getRandomValues(new Uint8Array(16))).slice(2);
}

/** WebCrypto's ECDSA P-256 over SHA-256 of `bytes`: 64 bytes r ‖ s. */
export async function signWith(privateKey, bytes) {
  return new Uint8Array(
    await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, privateKey, bytes),
  );
}

/** The `latchkey-stamp` header of a call to `path` with `message`, by the session's key. */
export async function stamp({ session, privateKey, publicKey }, path, message) {
  const timestampMs = Date.now();
  const fresh = nonce();
  const head = encoder.encode(
    `latchkey stamp v1\n${path}\n${session}\n${timestampMs}\n${fresh}\n`,
  );
  const signed = new Uint8Array(head.length + message.length);
  signed.set(head);
  signed.set(message, head.length);
  const signature = await signWith(privateKey, signed);
  return JSON.stringify({
    session,
    publicKey,
    timestampMs,
    nonce: fresh,
    signature: hex(signature),
  });
}

/** A client of one session, calling `endpoint` with stamps of `key`. */
export class SessionClient {
  constructor(endpoint, key) {
    this.endpoint = endpoint;
    this.key = key;
  }

  async #unary(service, method, requestSchema, request, responseSchema) {
    const path = `/latchkey.v1.${service}/${method}`;
    const message = toBinary(requestSchema, create(requestSchema, request));
    const headers = { "latchkey-stamp": await stamp(this.key, path, message) };
    return fromBinary(responseSchema, await unary(this.endpoint, path, message, headers));
  }

  getSession() {
    return this.#unary("SessionService", "GetSession", GetSessionRequestSchema,
      { name: this.key.session }, SessionSchema);
  }

  /** The owner's passkey assertion of the registration (or revocation). */
  submitSessionSignature(webauthn) {
    return this.#unary("SessionService", "SubmitSessionSignature",
      SubmitSessionSignatureRequestSchema, { name: this.key.session, webauthn }, SessionSchema);
  }

  createIntent(interactions) {
    return this.#unary("TransactionIntentService", "CreateTransactionIntent",
      CreateTransactionIntentRequestSchema, { session: this.key.session, interactions },
      TransactionIntentSchema);
  }

  submitIntentSignature(name, signature) {
    return this.#unary("TransactionIntentService", "SubmitIntentSignature",
      SubmitIntentSignatureRequestSchema, { name, signature }, TransactionIntentSchema);
  }

  /** Each state of the intent as it changes, until it is final. */
  async *watchIntent(name) {
    const path = "/latchkey.v1.TransactionIntentService/WatchTransactionIntent";
    const schema = WatchTransactionIntentRequestSchema;
    const message = toBinary(schema, create(schema, { name }));
    const headers = { "latchkey-stamp": await stamp(this.key, path, message) };
    for await (const bytes of call(this.endpoint, path, message, headers)) {
      yield fromBinary(TransactionIntentSchema, bytes);
    }
  }
}
