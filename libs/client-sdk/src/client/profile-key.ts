import { randomBytes } from 'node:crypto';
import type { Profile } from '../profile';
import { deriveUnidentifiedAccessKey, PROFILE_KEY_BYTES } from '../unidentified-access';
import type { GatewayConnection } from './connection';

const PROFILE_KEY_FILE = 'profile-key.json';

/** profile-key.json: the account's profile key, and whether the server holds the access key derived from it. */
interface ProfileKeyFile {
  /** Base64 of the 32 bytes. */
  readonly key: string;
  readonly accessKeySet: boolean;
  /** Whether the account accepts sealed messages from anyone, not only from holders of the key (absent: no). */
  readonly fromAnyone?: boolean;
}

/**
 * The account's profile key: 32 random bytes that travel to contacts inside
 * every encrypted message, so that they can derive the account's
 * unidentified-access key and send it sealed messages. The server is given
 * the derived key (SetUnidentifiedAccess) before the profile key is handed to
 * anyone; a key whose access key is not yet set is set on its next use, so an
 * interrupted call is finished later.
 */
export class ProfileKey {
  constructor(
    private readonly profile: Profile,
    private readonly connection: GatewayConnection,
  ) {}

  /** The profile key, made (or made over) and announced to the server first when needed. */
  async current(): Promise<Uint8Array> {
    const file = this.read() ?? this.write(randomBytes(PROFILE_KEY_BYTES), false);
    const key = new Uint8Array(Buffer.from(file.key, 'base64'));
    if (!file.accessKeySet) {
      await this.announce(key, file.fromAnyone === true);
      this.write(key, true, file.fromAnyone);
    }
    return key;
  }

  /**
   * Whether strangers may send this account sealed messages: with `true` the
   * server lets in sealed sends with or without the access key, so anyone who
   * knows the account id can reach it without saying who they are; with
   * `false` (the default) only contacts holding the profile key can.
   */
  async acceptSealedFromAnyone(fromAnyone: boolean): Promise<void> {
    const key = new Uint8Array(
      Buffer.from((this.read() ?? this.write(randomBytes(PROFILE_KEY_BYTES), false)).key, 'base64'),
    );
    this.write(key, false, fromAnyone);
    await this.announce(key, fromAnyone);
    this.write(key, true, fromAnyone);
  }

  /**
   * Replaces the profile key: contacts holding the old one can no longer send
   * sealed, and fall back to authenticated sends until a message from this
   * account gives them the new one.
   */
  async rotate(): Promise<void> {
    const key = randomBytes(PROFILE_KEY_BYTES);
    const fromAnyone = this.read()?.fromAnyone;
    this.write(key, false, fromAnyone);
    await this.announce(key, fromAnyone === true);
    this.write(key, true, fromAnyone);
  }

  private announce(key: Uint8Array, fromAnyone: boolean): Promise<unknown> {
    return this.connection.call(
      this.connection.accounts.setUnidentifiedAccess.bind(this.connection.accounts),
      {
        unidentifiedAccessKey: Buffer.from(deriveUnidentifiedAccessKey(key)),
        unrestrictedUnidentifiedAccess: fromAnyone,
      },
    );
  }

  private read(): ProfileKeyFile | undefined {
    const file = this.profile.readJson(PROFILE_KEY_FILE) as ProfileKeyFile | undefined;
    return file !== undefined && Buffer.from(file.key, 'base64').length === PROFILE_KEY_BYTES
      ? file
      : undefined;
  }

  private write(key: Uint8Array, accessKeySet: boolean, fromAnyone?: boolean): ProfileKeyFile {
    const file: ProfileKeyFile = {
      key: Buffer.from(key).toString('base64'),
      accessKeySet,
      ...(fromAnyone === true ? { fromAnyone } : {}),
    };
    this.profile.writeJson(PROFILE_KEY_FILE, file);
    return file;
  }
}
