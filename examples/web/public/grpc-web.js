// gRPC-web over fetch: what the page (and the example's backend part, in Node) speak to
// latchkey. Browsers cannot send gRPC's HTTP/2 trailers, so gRPC-web frames the messages
// itself: each is `[flag][4-byte big-endian length][bytes]`, and the call's status comes as
// a last frame with flag 0x80 holding `grpc-status: N` lines, or, for a call refused at
// once, in the response's headers.
//
// Callers pass the request already encoded: a stamp signs the exact bytes sent, so the
// message is serialized once, by the caller, and those bytes go on the wire.

/** gRPC status codes by number, as the API's errors name them. */
export const CODES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
  "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
  "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
  "UNAUTHENTICATED",
];

/** A call that ended with a status other than OK. */
export class RpcError extends Error {
  constructor(code, message) {
    super(`${CODES[code] ?? code}: ${message}`);
    this.code = code;
    this.codeName = CODES[code] ?? String(code);
    this.detail = message;
  }
}

const TRAILER_FLAG = 0x80;
const HEADER_BYTES = 5;

/** `message` in one gRPC-web data frame. */
export function frame(message) {
  const framed = new Uint8Array(HEADER_BYTES + message.length);
  new DataView(framed.buffer).setUint32(1, message.length);
  framed.set(message, HEADER_BYTES);
  return framed;
}

/** The status in `headers` or in a trailer frame's text. */
function statusOf(lookup) {
  const code = lookup("grpc-status");
  if (code === undefined || code === null) return undefined;
  const message = decodeURIComponent(lookup("grpc-message") ?? "");
  return { code: Number(code), message };
}

function trailerLookup(bytes) {
  const fields = new Map();
  for (const line of new TextDecoder().decode(bytes).split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) fields.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return (name) => fields.get(name);
}

/**
 * The frames of a response body as they arrive: `{trailer, bytes}` each. Frames may span
 * the chunks fetch hands out, so bytes are gathered until a frame is whole.
 */
async function* framesOf(body) {
  const reader = body.getReader();
  let buffered = new Uint8Array(0);
  for (;;) {
    const { done, value } = await reader.read();
    if (value) {
      const joined = new Uint8Array(buffered.length + value.length);
      joined.set(buffered);
      joined.set(value, buffered.length);
      buffered = joined;
    }
    while (buffered.length >= HEADER_BYTES) {
      const length = new DataView(buffered.buffer, buffered.byteOffset).getUint32(1);
      if (buffered.length < HEADER_BYTES + length) break;
      yield {
        trailer: (buffered[0] & TRAILER_FLAG) !== 0,
        bytes: buffered.slice(HEADER_BYTES, HEADER_BYTES + length),
      };
      buffered = buffered.slice(HEADER_BYTES + length);
    }
    if (done) return;
  }
}

/**
 * Calls `path` (`/latchkey.v1.Service/Method`) at `endpoint` with the encoded `message` and
 * extra `headers`, and yields each response message's bytes; throws an RpcError for a
 * status other than OK.
 */
export async function* call(endpoint, path, message, headers = {}) {
  const response = await fetch(endpoint + path, {
    method: "POST",
    headers: {
      "content-type": "application/grpc-web+proto",
      "x-grpc-web": "1",
      ...headers,
    },
    body: frame(message),
  });
  if (!response.ok) {
    throw new RpcError(2, `HTTP ${response.status} from ${path}`);
  }
  // Refused at once: the status is in the headers, and there is no body worth reading.
  const early = statusOf((name) => response.headers.get(name));
  if (early && early.code !== 0) throw new RpcError(early.code, early.message);
  for await (const { trailer, bytes } of framesOf(response.body)) {
    if (!trailer) {
      yield bytes;
      continue;
    }
    const status = statusOf(trailerLookup(bytes));
    if (status && status.code !== 0) throw new RpcError(status.code, status.message);
    return;
  }
  if (!early) throw new RpcError(2, `${path} ended without a status`);
}

/** A unary call: the one response message's bytes. */
export async function unary(endpoint, path, message, headers = {}) {
  let answer;
  for await (const bytes of call(endpoint, path, message, headers)) answer = bytes;
  if (answer === undefined) throw new RpcError(2, `${path} answered no message`);
  return answer;
}
