import {
  addDevice,
  bindUsername,
  deviceList,
  dropProfileKey,
  keepProfileKey,
  nameOf,
  type Contacts,
} from './contacts';

const ALICE = '0190a1b2-0000-7000-8000-000000000001';
const MALLORY = '0190a1b2-0000-7000-8000-000000000009';

describe('bindUsername', () => {
  it('binds a username the directory named', () => {
    const contacts: Contacts = { byName: {}, devices: {} };
    expect(bindUsername(contacts, 'alice', ALICE)).toBe('bound');
    expect(contacts.byName).toEqual({ alice: ALICE });
    expect(bindUsername(contacts, 'alice', ALICE)).toBe('unchanged');
  });

  it('says so when the directory gives a known username to another account, and keeps the devices of both', () => {
    const contacts: Contacts = { byName: { alice: ALICE }, devices: { [ALICE]: [1] } };
    expect(bindUsername(contacts, 'alice', MALLORY)).toBe('moved');
    expect(contacts).toEqual({ byName: { alice: MALLORY }, devices: { [ALICE]: [1] } });
    expect(nameOf(contacts, ALICE)).toBeUndefined();
  });

  it("drops the name an account held before: an account has the directory's one name", () => {
    const contacts: Contacts = { byName: { alice: ALICE, bob: 'x' }, devices: {} };
    expect(bindUsername(contacts, 'alice2', ALICE)).toBe('bound');
    expect(contacts.byName).toEqual({ alice2: ALICE, bob: 'x' });
    expect(nameOf(contacts, ALICE)).toBe('alice2');
  });
});

describe('addDevice', () => {
  it("adds a sender's other device to the ones known, in order, once", () => {
    const contacts: Contacts = { byName: { alice: ALICE }, devices: { [ALICE]: [1, 3] } };
    expect(addDevice(contacts, ALICE, 2)).toBe(true);
    expect(contacts.devices[ALICE]).toEqual([1, 2, 3]);
    expect(addDevice(contacts, ALICE, 2)).toBe(false);
    expect(contacts.devices[ALICE]).toEqual([1, 2, 3]);
  });

  it('never binds a name: only the directory does', () => {
    const contacts: Contacts = { byName: { alice: ALICE }, devices: {} };
    expect(addDevice(contacts, MALLORY, 1)).toBe(true);
    expect(contacts).toEqual({ byName: { alice: ALICE }, devices: { [MALLORY]: [1] } });
  });
});

describe('deviceList', () => {
  it('keeps each device id once, in ascending order', () => {
    expect(deviceList([3, 1, 2, 3, 10])).toEqual([1, 2, 3, 10]);
  });
});

describe('profile keys', () => {
  const BOB = '0190a1b2-0000-7000-8000-000000000002';
  const key = (fill: number) => Buffer.alloc(32, fill).toString('base64');

  it("keeps the sender's newest key, per sender, and drops it on request", () => {
    const contacts: Contacts = { byName: {}, devices: {} };
    expect(keepProfileKey(contacts, BOB, ALICE, key(1))).toBe(true);
    expect(keepProfileKey(contacts, BOB, ALICE, key(1))).toBe(false);
    expect(keepProfileKey(contacts, BOB, MALLORY, key(9))).toBe(true);
    expect(keepProfileKey(contacts, BOB, ALICE, key(2))).toBe(true);
    expect(contacts.profileKeys).toEqual({ [ALICE]: key(2), [MALLORY]: key(9) });
    expect(dropProfileKey(contacts, ALICE)).toBe(true);
    expect(dropProfileKey(contacts, ALICE)).toBe(false);
    expect(contacts.profileKeys).toEqual({ [MALLORY]: key(9) });
  });

  it("never keeps a key for this account itself: its own key is not a contact's", () => {
    const contacts: Contacts = { byName: {}, devices: {} };
    expect(keepProfileKey(contacts, ALICE, ALICE, key(1))).toBe(false);
    expect(contacts.profileKeys).toBeUndefined();
  });
});
