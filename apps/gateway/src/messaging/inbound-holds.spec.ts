import { InboundHolds } from './inbound-holds';

function flow() {
  const changes: string[] = [];
  return { changes, pause: () => changes.push('pause'), resume: () => changes.push('resume') };
}

describe('InboundHolds', () => {
  it('pauses the call on the first pause and reads again only once every holder has resumed', () => {
    const inbound = flow();
    const holds = new InboundHolds(inbound);
    const acks = holds.holder();
    const sends = holds.holder();
    acks.pause();
    sends.pause();
    expect(inbound.changes).toEqual(['pause']);
    acks.resume();
    expect(inbound.changes).toEqual(['pause']);
    sends.resume();
    expect(inbound.changes).toEqual(['pause', 'resume']);
  });

  it('counts a holder once however often it pauses, and ignores a resume it owes nothing', () => {
    const inbound = flow();
    const holds = new InboundHolds(inbound);
    const acks = holds.holder();
    const sends = holds.holder();
    sends.resume();
    acks.pause();
    acks.pause();
    sends.resume();
    expect(inbound.changes).toEqual(['pause']);
    acks.resume();
    acks.resume();
    expect(inbound.changes).toEqual(['pause', 'resume']);
    sends.pause();
    expect(inbound.changes).toEqual(['pause', 'resume', 'pause']);
  });
});
