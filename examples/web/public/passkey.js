// The player's passkey: created once, it owns the account; it signs the session's
// registration with user verification, the only touch the player makes.

import { hex } from "./latchkey.js";

/** base64url without padding, as WebAuthn challenges are written. */
function fromBase64url(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4)), (c) =>
    c.charCodeAt(0),
  );
}

/** A new passkey: its credential id and its public key, 0x04 ‖ x ‖ y. */
export async function createPasskey() {
  const credential = await navigator.credentials.create({
    publicKey: {
      rp: { name: "latchkey example game", id: location.hostname },
      user: {
        id: crypto.getRandomValues(new Uint8Array(16)),
        name: "player",
        displayName: "Player",
      },
      challenge: crypto.getRandomValues(new Uint8Array(32)),
      pubKeyCredParams: [{ type: "public-key", alg: -7 }],
      authenticatorSelection: { residentKey: "required", userVerification: "required" },
    },
  });
  // The SubjectPublicKeyInfo of a P-256 key ends with the uncompressed point.
  const spki = new Uint8Array(credential.response.getPublicKey());
  return { credentialId: hex(credential.rawId), publicKey: hex(spki.slice(-65)) };
}

/** The passkey's assertion of `challenge` (base64url), as SubmitSessionSignature takes it. */
export async function assert(credentialId, challenge) {
  const id = Uint8Array.from(credentialId.slice(2).match(/../g), (pair) => parseInt(pair, 16));
  const assertion = await navigator.credentials.get({
    publicKey: {
      challenge: fromBase64url(challenge),
      rpId: location.hostname,
      allowCredentials: [{ type: "public-key", id }],
      userVerification: "required",
    },
  });
  return {
    authenticatorData: hex(assertion.response.authenticatorData),
    clientDataJson: hex(assertion.response.clientDataJSON),
    signature: hex(assertion.response.signature),
  };
}
