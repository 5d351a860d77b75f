// What the page keeps across reloads, in IndexedDB: the passkey's id and public key, the
// session key pair (a CryptoKey pair whose private half cannot be exported, stored as the
// key objects themselves), and the session it acts for.

const DATABASE = "latchkey-example";
const STORE = "player";
const RECORD = "current";

function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DATABASE, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function transact(mode, act) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = act(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

/** The player's saved state, or undefined. */
export function load() {
  return transact("readonly", (store) => store.get(RECORD));
}

/** Saves `state` whole (the CryptoKeys are structured-cloned, still non-extractable). */
export function save(state) {
  return transact("readwrite", (store) => store.put(state, RECORD));
}

/** Forgets everything: the next visit starts a new player. */
export function clear() {
  return transact("readwrite", (store) => store.delete(RECORD));
}
