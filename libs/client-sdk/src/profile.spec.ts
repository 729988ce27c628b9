import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Profile } from './profile';

describe('Profile, the GUIDs of handled envelopes', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sotto-profile-'));
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('recognises a redelivered envelope, also in the next run', () => {
    const profile = Profile.create(dir);
    expect(profile.hasSeen('guid-1')).toBe(false);
    profile.markSeen('guid-1');
    expect(profile.hasSeen('guid-1')).toBe(true);
    expect(new Profile(dir).hasSeen('guid-1')).toBe(true);
    expect(new Profile(dir).hasSeen('guid-2')).toBe(false);
  });

  it('keeps the newest 10 000 once the list is compacted, and forgets the older ones', () => {
    const profile = Profile.create(dir);
    for (let index = 0; index <= 20_000; index++) profile.markSeen(`guid-${index}`);
    for (const reader of [profile, new Profile(dir)]) {
      expect(reader.hasSeen('guid-10000')).toBe(false);
      expect(reader.hasSeen('guid-10001')).toBe(true);
      expect(reader.hasSeen('guid-20000')).toBe(true);
    }
  });
});
