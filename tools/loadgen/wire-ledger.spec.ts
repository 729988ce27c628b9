import { randomBytes } from 'node:crypto';
import { DeliveryLedger, envelopeContent } from './wire-ledger';

describe('DeliveryLedger', () => {
  const filler = randomBytes(200);

  it('counts a send confirmed and delivered once as delivered, with its latency', async () => {
    const ledger = new DeliveryLedger(filler);
    const sequence = ledger.sending(100);
    ledger.confirmed(sequence, 'g1');
    expect(ledger.delivered('g1', envelopeContent(sequence, filler), 130)).toBe(30);
    await ledger.whenComplete();
    expect(ledger.counts()).toEqual({
      sent: 1,
      confirmed: 1,
      sendErrors: {},
      delivered: 1,
      lost: 0,
      duplicated: 0,
      redelivered: 0,
      shownTwice: 0,
      unconfirmed: 0,
      corrupted: 0,
    });
  });

  it('takes a delivery that arrives before Send is answered', () => {
    const ledger = new DeliveryLedger(filler);
    const sequence = ledger.sending(0);
    ledger.delivered('g1', envelopeContent(sequence, filler), 5);
    expect(ledger.complete).toBe(false);
    ledger.confirmed(sequence, 'g1');
    expect(ledger.complete).toBe(true);
    expect(ledger.counts()).toMatchObject({ delivered: 1, lost: 0, unconfirmed: 0 });
  });

  it('counts a confirmed GUID never delivered as lost', () => {
    const ledger = new DeliveryLedger(filler);
    const first = ledger.sending(0);
    const second = ledger.sending(0);
    ledger.confirmed(first, 'g1');
    ledger.confirmed(second, 'g2');
    ledger.delivered('g1', envelopeContent(first, filler), 1);
    expect(ledger.complete).toBe(false);
    expect(ledger.counts()).toMatchObject({ sent: 2, confirmed: 2, delivered: 1, lost: 1 });
    expect(ledger.missing()).toEqual([{ guid: 'g2', sequence: second, sentAt: 0 }]);
  });

  it('counts a GUID delivered again, or the same send under another GUID, as duplicated', () => {
    const ledger = new DeliveryLedger(filler);
    const sequence = ledger.sending(0);
    ledger.confirmed(sequence, 'g1');
    ledger.delivered('g1', envelopeContent(sequence, filler), 1);
    expect(ledger.delivered('g1', envelopeContent(sequence, filler), 2)).toBeUndefined();
    expect(ledger.delivered('g2', envelopeContent(sequence, filler), 3)).toBeUndefined();
    expect(ledger.counts()).toMatchObject({ delivered: 1, duplicated: 2, lost: 0 });
  });

  it('tells a redelivery the SDK drops by GUID from a copy under a new GUID that the user would see', () => {
    const ledger = new DeliveryLedger(filler);
    const first = ledger.sending(0);
    const second = ledger.sending(0);
    ledger.confirmed(first, 'g1');
    ledger.confirmed(second, 'g2');
    ledger.delivered('g1', envelopeContent(first, filler), 1);
    ledger.delivered('g1', envelopeContent(first, filler), 2);
    ledger.delivered('g1', envelopeContent(first, filler), 3);
    expect(ledger.counts()).toMatchObject({ duplicated: 2, redelivered: 2, shownTwice: 0 });
    ledger.delivered('g2', envelopeContent(second, filler), 4);
    ledger.delivered('g3', envelopeContent(second, filler), 5);
    expect(ledger.counts()).toMatchObject({ delivered: 2, duplicated: 3, redelivered: 2, shownTwice: 1 });
  });

  it('counts changed content as corrupted and failed sends by status', () => {
    const ledger = new DeliveryLedger(filler);
    const sequence = ledger.sending(0);
    ledger.confirmed(sequence, 'g1');
    const changed = envelopeContent(sequence, filler);
    changed[100] = (changed[100] ?? 0) ^ 1;
    ledger.delivered('g1', changed, 1);
    ledger.sending(0);
    ledger.failed('UNAVAILABLE');
    expect(ledger.counts()).toMatchObject({
      sent: 2,
      confirmed: 1,
      corrupted: 1,
      sendErrors: { UNAVAILABLE: 1 },
    });
  });

  it('counts a delivery whose send was never confirmed as unconfirmed', () => {
    const ledger = new DeliveryLedger(filler);
    const sequence = ledger.sending(0);
    ledger.failed('DEADLINE_EXCEEDED');
    ledger.delivered('g1', envelopeContent(sequence, filler), 1);
    expect(ledger.counts()).toMatchObject({ delivered: 1, unconfirmed: 1, lost: 0 });
  });
});
