import { randomBytes } from 'node:crypto';
import { GroupLedger, UPLOAD_TAIL_BYTES } from './group-ledger';

describe('GroupLedger', () => {
  const members = new Set(['b.1', 'c.1', 'd.1']);
  /** An upload and the copy of it a recipient gets: its own header, then the upload's shared end. */
  const upload = (): { upload: Buffer; copy: () => Buffer } => {
    const shared = randomBytes(300);
    return {
      upload: Buffer.concat([randomBytes(120), shared]),
      copy: () => Buffer.concat([randomBytes(49), shared]),
    };
  };

  it('names each copy by its upload and its device, with its latency, and completes once every copy arrived', async () => {
    const ledger = new GroupLedger();
    const one = upload();
    ledger.register(0, one.upload, members);
    ledger.uploading(0, 100);
    ledger.confirmed(0);
    expect(ledger.complete).toBe(false);
    for (const device of members) {
      expect(ledger.delivered(ledger.uploadOf(one.copy()), device, 140)).toBe(40);
    }
    await ledger.whenComplete();
    expect(ledger.counts()).toEqual({
      uploads: 1,
      accepted: 1,
      uploadErrors: {},
      expectedCopies: 3,
      deliveredCopies: 3,
      lost: 0,
      duplicated: 0,
      unconfirmed: 0,
      unexpected: 0,
    });
  });

  it('takes copies that arrive before the upload is answered', () => {
    const ledger = new GroupLedger();
    const one = upload();
    ledger.register(0, one.upload, members);
    ledger.uploading(0, 0);
    for (const device of members) ledger.delivered(ledger.uploadOf(one.copy()), device, 5);
    expect(ledger.complete).toBe(false);
    ledger.confirmed(0);
    expect(ledger.complete).toBe(true);
    expect(ledger.counts()).toMatchObject({ deliveredCopies: 3, lost: 0, unconfirmed: 0 });
  });

  it('counts a copy missing from one device as lost, a second copy to a device as duplicated', () => {
    const ledger = new GroupLedger();
    const [one, two] = [upload(), upload()];
    ledger.register(0, one.upload, members);
    ledger.register(1, two.upload, members);
    ledger.uploading(0, 0);
    ledger.uploading(1, 0);
    ledger.confirmed(0);
    ledger.confirmed(1);
    for (const device of ['b.1', 'c.1']) ledger.delivered(ledger.uploadOf(one.copy()), device, 1);
    for (const device of members) ledger.delivered(ledger.uploadOf(two.copy()), device, 1);
    expect(ledger.delivered(ledger.uploadOf(two.copy()), 'c.1', 2)).toBeUndefined();
    expect(ledger.complete).toBe(false);
    expect(ledger.counts()).toMatchObject({ expectedCopies: 6, deliveredCopies: 5, lost: 1, duplicated: 1 });
  });

  it('counts copies of failed uploads as unconfirmed, and copies to strangers or of no upload as unexpected', () => {
    const ledger = new GroupLedger();
    const one = upload();
    ledger.register(0, one.upload, members);
    ledger.uploading(0, 0);
    ledger.delivered(ledger.uploadOf(one.copy()), 'b.1', 1);
    ledger.failed('UNAVAILABLE');
    expect(ledger.delivered(ledger.uploadOf(one.copy()), 'a.1', 1)).toBeUndefined();
    expect(ledger.delivered(ledger.uploadOf(randomBytes(400)), 'b.1', 1)).toBeUndefined();
    expect(ledger.counts()).toMatchObject({
      uploads: 1,
      accepted: 0,
      uploadErrors: { UNAVAILABLE: 1 },
      expectedCopies: 0,
      lost: 0,
      unconfirmed: 1,
      unexpected: 2,
    });
    expect(ledger.complete).toBe(true);
  });

  it('refuses two uploads that end alike: their copies could not be told apart', () => {
    const ledger = new GroupLedger();
    const shared = randomBytes(UPLOAD_TAIL_BYTES);
    ledger.register(0, Buffer.concat([randomBytes(10), shared]), members);
    expect(() => ledger.register(1, Buffer.concat([randomBytes(10), shared]), members)).toThrow(
      'uploads 0 and 1 end alike',
    );
  });
});
