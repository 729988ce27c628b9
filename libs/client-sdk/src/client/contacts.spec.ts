import { bindSender, deviceList, type Contacts } from './contacts';

const ALICE = '0190a1b2-0000-7000-8000-000000000001';

describe('bindSender', () => {
  it('binds a new sender and the device it wrote from', () => {
    const contacts: Contacts = { byName: {}, devices: {} };
    expect(bindSender(contacts, 'alice', ALICE, 2)).toBe(true);
    expect(contacts).toEqual({ byName: { alice: ALICE }, devices: { [ALICE]: [2] } });
  });

  it("adds a sender's other device to the ones known, in order, once", () => {
    const contacts: Contacts = { byName: { alice: ALICE }, devices: { [ALICE]: [1, 3] } };
    expect(bindSender(contacts, 'alice', ALICE, 2)).toBe(true);
    expect(contacts.devices[ALICE]).toEqual([1, 2, 3]);
    expect(bindSender(contacts, 'alice', ALICE, 2)).toBe(false);
    expect(contacts.devices[ALICE]).toEqual([1, 2, 3]);
  });

  it('rebinds a username that now writes from another account', () => {
    const other = '0190a1b2-0000-7000-8000-000000000009';
    const contacts: Contacts = { byName: { alice: other }, devices: { [other]: [1] } };
    expect(bindSender(contacts, 'alice', ALICE, 1)).toBe(true);
    expect(contacts).toEqual({ byName: { alice: ALICE }, devices: { [other]: [1], [ALICE]: [1] } });
  });
});

describe('deviceList', () => {
  it('keeps each device id once, in ascending order', () => {
    expect(deviceList([3, 1, 2, 3, 10])).toEqual([1, 2, 3, 10]);
  });
});
