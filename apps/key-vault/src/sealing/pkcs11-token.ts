import { randomBytes } from 'node:crypto';
import * as pkcs11 from 'pkcs11js';

export interface HsmSettings {
  /** PKCS11_MODULE */
  readonly modulePath: string;
  /** PKCS11_TOKEN_LABEL */
  readonly tokenLabel: string;
  /** PKCS11_PIN */
  readonly pin: string;
}

/** The HSM cannot be used as configured; the message names the variable to fix. */
export class HsmConfigError extends Error {
  override readonly name = 'HsmConfigError';
}

/** A sealed blob did not open: another key, another context, or tampered bytes. */
export class UnsealError extends Error {
  override readonly name = 'UnsealError';
}

/** An AES key on the token, by its handle and its CKA_ID. */
export interface TokenKey {
  readonly label: string;
  readonly id: Buffer;
}

const KEY_BITS = 256;
export const GCM_IV_BYTES = 12;
export const GCM_TAG_BYTES = 16;

// Errors after which a fresh session (and login) may succeed: a network HSM
// dropped the connection, or the token was re-inserted.
const SESSION_LOST = new Set([
  pkcs11.CKR_SESSION_HANDLE_INVALID,
  pkcs11.CKR_SESSION_CLOSED,
  pkcs11.CKR_USER_NOT_LOGGED_IN,
  pkcs11.CKR_DEVICE_REMOVED,
  pkcs11.CKR_DEVICE_ERROR,
  pkcs11.CKR_TOKEN_NOT_PRESENT,
]);

const PIN_REFUSED = new Set([
  pkcs11.CKR_PIN_INCORRECT,
  pkcs11.CKR_PIN_INVALID,
  pkcs11.CKR_PIN_LEN_RANGE,
  pkcs11.CKR_PIN_EXPIRED,
  pkcs11.CKR_PIN_LOCKED,
]);

// Authentication failures of AES-GCM decryption, as tokens report them.
const DECRYPT_REFUSED = new Set([
  pkcs11.CKR_ENCRYPTED_DATA_INVALID,
  pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE,
  pkcs11.CKR_GENERAL_ERROR, // SoftHSM2, on a tag mismatch
]);

function errorCode(error: unknown): number | undefined {
  return error instanceof pkcs11.Pkcs11Error ? error.code : undefined;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * One PKCS#11 token, logged in as its user, doing AES-256-GCM with keys that
 * never leave it. Calls are synchronous: Node runs one at a time, so the one
 * session never sees two operations interleave. The library is initialised
 * per process: open one at a time.
 */
export class Pkcs11Token {
  private session: Buffer;
  /** Object handles by CKA_ID; valid for the current session only. */
  private readonly handles = new Map<string, Buffer>();

  private constructor(
    private readonly module: pkcs11.PKCS11,
    private slot: Buffer,
    private readonly settings: HsmSettings,
  ) {
    this.session = this.login();
  }

  /**
   * Loads the library, finds the token by label and logs in; errors name the variable at fault.
   * A token that is not among the library's tokens is looked for again `lookups` times in all,
   * `lookupWaitMs` apart, with the library initialised afresh each time: SoftHSM2's file store
   * lists a token as absent while another process is rewriting its files (making a key, another
   * token being initialised beside it), and a network HSM may answer before its tokens are up.
   */
  static open(settings: HsmSettings, lookups = 5, lookupWaitMs = 200): Pkcs11Token {
    const module = new pkcs11.PKCS11();
    try {
      module.load(settings.modulePath);
    } catch (error) {
      throw new HsmConfigError(`PKCS11_MODULE: cannot load ${settings.modulePath}: ${message(error)}`);
    }
    const slot = Pkcs11Token.initialise(module, settings, lookups, lookupWaitMs);
    try {
      return new Pkcs11Token(module, slot, settings);
    } catch (error) {
      module.C_Finalize();
      throw error;
    }
  }

  /** Initialises the loaded library and finds the token's slot, as `open` says; left initialised only when found. */
  private static initialise(
    module: pkcs11.PKCS11,
    settings: HsmSettings,
    lookups: number,
    lookupWaitMs: number,
  ): Buffer {
    for (let lookup = 1; ; lookup++) {
      try {
        module.C_Initialize();
      } catch (error) {
        throw new HsmConfigError(`PKCS11_MODULE: C_Initialize failed: ${message(error)}`);
      }
      let labels: string[];
      try {
        // A slot whose token can't be read now (being initialised, its files being rewritten) is
        // not the one: looked for again on the next look.
        const slots = module.C_GetSlotList(true).flatMap((slot) => {
          try {
            return [{ slot, info: module.C_GetTokenInfo(slot) }];
          } catch {
            return [];
          }
        });
        const initialized = slots.filter(({ info }) => (info.flags & pkcs11.CKF_TOKEN_INITIALIZED) !== 0);
        const found = initialized.find(({ info }) => info.label.trimEnd() === settings.tokenLabel);
        if (found) return found.slot;
        labels = initialized.map(({ info }) => JSON.stringify(info.label.trimEnd()));
      } catch (error) {
        module.C_Finalize();
        throw error;
      }
      module.C_Finalize();
      if (lookup >= lookups) {
        throw new HsmConfigError(
          `PKCS11_TOKEN_LABEL: no token labelled "${settings.tokenLabel}" (tokens: ${labels.join(', ') || 'none'})`,
        );
      }
      // Synchronous, as every call on the token is; this runs while the vault starts.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, lookupWaitMs);
    }
  }

  /**
   * Reads the token afresh: the library initialised again, a new session, no handle kept. A key
   * that another process made since this one started may not be among the objects a SoftHSM2
   * process listed (its file store notices other writers by a generation count that two writers
   * can leave at the same value), nor yet on every node of a clustered HSM.
   */
  reload(): void {
    try {
      this.module.C_CloseSession(this.session);
    } catch {
      // gone already
    }
    this.module.C_Finalize();
    this.handles.clear();
    this.slot = Pkcs11Token.initialise(this.module, this.settings, 5, 200);
    this.session = this.login();
  }

  private login(): Buffer {
    const session = this.module.C_OpenSession(this.slot, pkcs11.CKF_SERIAL_SESSION | pkcs11.CKF_RW_SESSION);
    try {
      this.module.C_Login(session, pkcs11.CKU_USER, this.settings.pin);
    } catch (error) {
      const code = errorCode(error);
      // Login is per application: a session opened after a reconnect may find it done.
      if (code !== pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
        this.module.C_CloseSession(session);
        if (code !== undefined && PIN_REFUSED.has(code)) {
          throw new HsmConfigError(
            `PKCS11_PIN: token "${this.settings.tokenLabel}" refused it: ${message(error)}`,
          );
        }
        throw error;
      }
    }
    return session;
  }

  /** Runs one operation; once more on a fresh session if the old one was lost. */
  private call<T>(operation: (session: Buffer) => T): T {
    try {
      return operation(this.session);
    } catch (error) {
      const code = errorCode(error);
      if (code === undefined || !SESSION_LOST.has(code)) throw error;
      try {
        this.module.C_CloseSession(this.session);
      } catch {
        // already gone with the connection
      }
      this.handles.clear();
      this.session = this.login();
      return operation(this.session);
    }
  }

  /** Secret AES keys with this label, in CKA_ID order. */
  findKeys(label: string): TokenKey[] {
    return this.call((session) => this.findHandles(session, label))
      .map((handle) => ({ label, id: this.attribute(handle, pkcs11.CKA_ID) }))
      .sort((a, b) => Buffer.compare(a.id, b.id));
  }

  private findHandles(session: Buffer, label: string, id?: Buffer): Buffer[] {
    this.module.C_FindObjectsInit(session, [
      { type: pkcs11.CKA_CLASS, value: pkcs11.CKO_SECRET_KEY },
      { type: pkcs11.CKA_KEY_TYPE, value: pkcs11.CKK_AES },
      { type: pkcs11.CKA_LABEL, value: label },
      ...(id ? [{ type: pkcs11.CKA_ID, value: id }] : []),
    ]);
    try {
      return this.module.C_FindObjects(session, 100);
    } finally {
      this.module.C_FindObjectsFinal(session);
    }
  }

  private handle(session: Buffer, key: TokenKey): Buffer {
    const cacheKey = `${key.label}/${key.id.toString('hex')}`;
    let handle = this.handles.get(cacheKey);
    if (!handle) {
      [handle] = this.findHandles(session, key.label, key.id);
      if (!handle) {
        throw new HsmConfigError(
          `PKCS11_KEY_LABEL: token "${this.settings.tokenLabel}" has no key "${key.label}" with id ${key.id.toString('hex')}`,
        );
      }
      this.handles.set(cacheKey, handle);
    }
    return handle;
  }

  private attribute(handle: Buffer, type: number): Buffer {
    const [result] = this.call((session) => this.module.C_GetAttributeValue(session, handle, [{ type }]));
    return result?.value ?? Buffer.alloc(0);
  }

  /** Whether the key is kept secret by the token: sensitive, and never extractable. */
  isLockedDown(key: TokenKey): boolean {
    const handle = this.call((session) => this.handle(session, key));
    const flag = (type: number): boolean => this.attribute(handle, type)[0] === 1;
    return flag(pkcs11.CKA_SENSITIVE) && !flag(pkcs11.CKA_EXTRACTABLE);
  }

  /** A new AES-256 key, stored on the token, that can encrypt and decrypt and never be read out. */
  generateKey(label: string): TokenKey {
    const id = randomBytes(16);
    this.call((session) =>
      this.module.C_GenerateKey(session, { mechanism: pkcs11.CKM_AES_KEY_GEN }, [
        { type: pkcs11.CKA_CLASS, value: pkcs11.CKO_SECRET_KEY },
        { type: pkcs11.CKA_KEY_TYPE, value: pkcs11.CKK_AES },
        { type: pkcs11.CKA_VALUE_LEN, value: KEY_BITS / 8 },
        { type: pkcs11.CKA_LABEL, value: label },
        { type: pkcs11.CKA_ID, value: id },
        { type: pkcs11.CKA_TOKEN, value: true },
        { type: pkcs11.CKA_PRIVATE, value: true },
        { type: pkcs11.CKA_SENSITIVE, value: true },
        { type: pkcs11.CKA_EXTRACTABLE, value: false },
        { type: pkcs11.CKA_ENCRYPT, value: true },
        { type: pkcs11.CKA_DECRYPT, value: true },
        { type: pkcs11.CKA_WRAP, value: false },
        { type: pkcs11.CKA_UNWRAP, value: false },
      ]),
    );
    return { label, id };
  }

  encrypt(key: TokenKey, iv: Buffer, aad: Buffer, plaintext: Buffer): Buffer {
    return this.call((session) => {
      this.module.C_EncryptInit(session, gcm(iv, aad), this.handle(session, key));
      return this.module.C_Encrypt(session, plaintext, Buffer.alloc(plaintext.length + GCM_TAG_BYTES));
    });
  }

  /** Throws UnsealError when the tag does not verify under this key, IV and AAD. */
  decrypt(key: TokenKey, iv: Buffer, aad: Buffer, ciphertext: Buffer): Buffer {
    try {
      return this.call((session) => {
        this.module.C_DecryptInit(session, gcm(iv, aad), this.handle(session, key));
        return this.module.C_Decrypt(session, ciphertext, Buffer.alloc(ciphertext.length));
      });
    } catch (error) {
      const code = errorCode(error);
      if (code !== undefined && DECRYPT_REFUSED.has(code)) {
        throw new UnsealError(`does not open with HSM key "${key.label}" (${message(error)})`);
      }
      throw error;
    }
  }

  /** For readiness: the session still answers. */
  ping(): void {
    this.call((session) => this.module.C_GetSessionInfo(session));
  }

  close(): void {
    try {
      this.module.C_CloseSession(this.session);
    } finally {
      this.module.C_Finalize();
    }
  }
}

function gcm(iv: Buffer, aad: Buffer): pkcs11.Mechanism {
  const parameter: pkcs11.GcmParams = {
    type: pkcs11.CK_PARAMS_GCM,
    iv,
    ivBits: iv.length * 8,
    aad,
    tagBits: GCM_TAG_BYTES * 8,
  };
  return { mechanism: pkcs11.CKM_AES_GCM, parameter };
}
