/** libsignal takes ArrayBuffer-backed arrays; a copy makes one of any bytes (a Buffer may share a pool). */
export function bytes(data: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(data);
}
