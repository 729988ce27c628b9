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
      await this.announce(key);
      this.write(key, true);
    }
    return key;
  }

  /**
   * Replaces the profile key: contacts holding the old one can no longer send
   * sealed, and fall back to authenticated sends until a message from this
   * account gives them the new one.
   */
  async rotate(): Promise<void> {
    const key = randomBytes(PROFILE_KEY_BYTES);
    this.write(key, false);
    await this.announce(key);
    this.write(key, true);
  }

  private announce(key: Uint8Array): Promise<unknown> {
    return this.connection.call(
      this.connection.accounts.setUnidentifiedAccess.bind(this.connection.accounts),
      {
        unidentifiedAccessKey: Buffer.from(deriveUnidentifiedAccessKey(key)),
        unrestrictedUnidentifiedAccess: false,
      },
    );
  }

  private read(): ProfileKeyFile | undefined {
    const file = this.profile.readJson(PROFILE_KEY_FILE) as ProfileKeyFile | undefined;
    return file !== undefined && Buffer.from(file.key, 'base64').length === PROFILE_KEY_BYTES
      ? file
      : undefined;
  }

  private write(key: Uint8Array, accessKeySet: boolean): ProfileKeyFile {
    const file: ProfileKeyFile = { key: Buffer.from(key).toString('base64'), accessKeySet };
    this.profile.writeJson(PROFILE_KEY_FILE, file);
    return file;
  }
}
