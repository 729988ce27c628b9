import { Registry } from 'prom-client';
import { MailboxMetrics } from './mailbox-metrics';

describe('mailbox metrics', () => {
  it('counts the depths Sends found, by bucket, never by whose mailbox', async () => {
    const registry = new Registry();
    const metrics = new MailboxMetrics(registry);
    for (const depth of [0, 3, 3, 40_000, 60_000]) metrics.found(depth);
    const text = await registry.getSingleMetricAsString('sotto_mailbox_depth_envelopes');
    expect(text).toContain('sotto_mailbox_depth_envelopes_bucket{le="0"} 1');
    expect(text).toContain('sotto_mailbox_depth_envelopes_bucket{le="10"} 3');
    expect(text).toContain('sotto_mailbox_depth_envelopes_bucket{le="50000"} 4');
    expect(text).toContain('sotto_mailbox_depth_envelopes_bucket{le="+Inf"} 5');
    expect(text).toContain('sotto_mailbox_depth_envelopes_count 5');
    expect(text).not.toMatch(/account|device/);
  });
});
