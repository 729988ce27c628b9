import { Fingerprint, type PublicKey } from '@signalapp/libsignal-client';
import { bytes } from './bytes';

/** Signal's settings for a displayable fingerprint. */
const ITERATIONS = 5200;
const VERSION = 2;

export interface AccountIdentity {
  readonly accountId: string;
  readonly identityKey: PublicKey;
}

function uuidBytes(uuid: string): Uint8Array<ArrayBuffer> {
  return bytes(Buffer.from(uuid.replace(/-/g, ''), 'hex'));
}

/** The 60-digit safety number of two accounts' identity keys; the same whichever side computes it. */
export function safetyNumber(mine: AccountIdentity, theirs: AccountIdentity): string {
  return Fingerprint.new(
    ITERATIONS,
    VERSION,
    uuidBytes(mine.accountId),
    mine.identityKey,
    uuidBytes(theirs.accountId),
    theirs.identityKey,
  )
    .displayableFingerprint()
    .toString();
}
