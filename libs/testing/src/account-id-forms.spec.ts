import { randomBytes, randomUUID } from 'node:crypto';
import { accountIdForms } from './everything-stored';

const found = (forms: Buffer[], data: Buffer): boolean => forms.some((form) => data.includes(form));

describe('accountIdForms', () => {
  const accountId = randomUUID();
  const raw = Buffer.from(accountId.replace(/-/g, ''), 'hex');
  const forms = accountIdForms(accountId);

  it.each([
    ['its text', accountId],
    ['its text in upper case', accountId.toUpperCase()],
    ['its hex without dashes', accountId.replace(/-/g, '')],
    ['its hex without dashes in upper case', accountId.replace(/-/g, '').toUpperCase()],
    ['its bytes in base64, padded', raw.toString('base64')],
    ['its bytes in base64url', raw.toString('base64url')],
  ])('finds %s written inside other text', (_, written) => {
    expect(found(forms, Buffer.from(`{"sender":"${written}","n":1}`))).toBe(true);
  });

  it('finds its 16 bytes among others, and in base64 when more bytes follow them', () => {
    const data = Buffer.concat([randomBytes(9), raw, randomBytes(7)]);
    expect(found(forms, data)).toBe(true);
    // Aligned to a group of three bytes, as a field that starts with the id is when encoded.
    const startingWithIt = Buffer.concat([raw, randomBytes(20)]);
    expect(found(forms, Buffer.from(startingWithIt.toString('base64')))).toBe(true);
    expect(found(forms, Buffer.from(startingWithIt.toString('base64url')))).toBe(true);
  });

  it('finds nothing of another account', () => {
    const other = randomUUID();
    const otherRaw = Buffer.from(other.replace(/-/g, ''), 'hex');
    const data = Buffer.concat([
      Buffer.from(`${other} ${other.toUpperCase()} ${otherRaw.toString('base64')}`),
      otherRaw,
    ]);
    expect(found(forms, data)).toBe(false);
  });

  it('refuses what is not an account id, rather than look for nothing', () => {
    expect(() => accountIdForms('alice')).toThrow('not an account id: alice');
  });
});
