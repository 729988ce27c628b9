/**
 * Writes helm/sotto/topology.json from the topology in @sotto/contracts, the
 * one place that says who may call what: the chart's NetworkPolicies and
 * service addresses are made from it. helm/chart.spec.ts fails while the file
 * and the table differ.
 *
 *   npx nx run helm-chart:topology
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { topologyDocument } from '@sotto/contracts';

export const TOPOLOGY_FILE = join(__dirname, 'sotto', 'topology.json');

export function topologyJson(): string {
  return `${JSON.stringify(topologyDocument(), null, 2)}\n`;
}

if (require.main === module) writeFileSync(TOPOLOGY_FILE, topologyJson());
