/**
 * What the account identity key signs for a device list (common/v1/device_list.proto): the UTF-8
 * bytes "sotto device list v1", one zero byte, then the serialized DeviceListContent. The context
 * keeps a list's signature from ever verifying as a signature over anything else the key signs
 * (prekeys, which are signed bare).
 */
export const DEVICE_LIST_SIGNING_CONTEXT = 'sotto device list v1';

export function deviceListSigningInput(content: Uint8Array): Uint8Array<ArrayBuffer> {
  const context = new TextEncoder().encode(DEVICE_LIST_SIGNING_CONTEXT);
  const input = new Uint8Array(context.length + 1 + content.length);
  input.set(context, 0);
  input.set(content, context.length + 1);
  return input;
}
