/** Pads plaintext to a multiple of 160 bytes (0x80, then zeros), so ciphertext sizes say little about message length. */
const BLOCK = 160;

export function pad(message: Uint8Array): Uint8Array<ArrayBuffer> {
  const padded = new Uint8Array(Math.ceil((message.length + 1) / BLOCK) * BLOCK);
  padded.set(message);
  padded[message.length] = 0x80;
  return padded;
}

export function unpad(padded: Uint8Array): Uint8Array {
  for (let index = padded.length - 1; index >= 0; index--) {
    if (padded[index] === 0x80) return padded.subarray(0, index);
    if (padded[index] !== 0) break;
  }
  throw new Error('message padding is invalid');
}
