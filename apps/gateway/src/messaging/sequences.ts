/**
 * Mailbox sequences as the contracts carry them: the relay numbers a mailbox's
 * envelopes 1, 2, 3... (Redis INCR), and they travel as uint64 in decimal, with no
 * sign and no leading zero ("0" aside), which is how a decoded uint64 is
 * written. Such numbers order by length first and then as text, so they are
 * compared here digit by digit, with no BigInt made per pushed envelope; for
 * these strings the answers are BigInt's, however large the numbers.
 */

const ZERO = 0x30;
const ONE = 0x31;
const NINE = 0x39;

/** Whether `sequence` comes after `other`: BigInt(sequence) > BigInt(other). */
export function comesAfter(sequence: string, other: string): boolean {
  if (sequence.length !== other.length) return sequence.length > other.length;
  return sequence > other;
}

/** Whether `sequence` is the one right after `previous`: BigInt(sequence) === BigInt(previous) + 1n. */
export function followsDirectly(sequence: string, previous: string): boolean {
  // Adding one turns the trailing 9s of `previous` into 0s and raises the digit before them by one,
  // or, when every digit is a 9, makes a 1 followed by as many 0s.
  let raised = previous.length - 1;
  while (raised >= 0 && previous.charCodeAt(raised) === NINE) raised--;
  if (raised < 0) {
    return (
      sequence.length === previous.length + 1 && sequence.charCodeAt(0) === ONE && zerosFrom(sequence, 1)
    );
  }
  if (sequence.length !== previous.length) return false;
  if (sequence.charCodeAt(raised) !== previous.charCodeAt(raised) + 1) return false;
  for (let i = 0; i < raised; i++) if (sequence.charCodeAt(i) !== previous.charCodeAt(i)) return false;
  return zerosFrom(sequence, raised + 1);
}

function zerosFrom(digits: string, start: number): boolean {
  for (let i = start; i < digits.length; i++) if (digits.charCodeAt(i) !== ZERO) return false;
  return true;
}
