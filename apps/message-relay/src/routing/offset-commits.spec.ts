import type { TopicPartitionOffsetAndMetadata } from 'kafkajs';
import { OffsetCommits } from './offset-commits';

describe('OffsetCommits', () => {
  const topic = 'sotto.envelopes.v1';

  function committer(intervalMs: number, fail = () => false) {
    const commits: TopicPartitionOffsetAndMetadata[][] = [];
    const errors: unknown[] = [];
    const commitsDone: (() => void)[] = [];
    const offsets = new OffsetCommits(
      (batch) => {
        commits.push(batch);
        commitsDone.splice(0).forEach((done) => done());
        return fail() ? Promise.reject(new Error('coordinator moved')) : Promise.resolve();
      },
      intervalMs,
      (error) => errors.push(error),
    );
    const nextCommit = () => new Promise<void>((resolve) => commitsDone.push(resolve));
    return { offsets, commits, errors, nextCommit };
  }

  it('commits the latest routed offset of each partition, once per interval', async () => {
    const { offsets, commits, nextCommit } = committer(50);
    const committed = nextCommit();
    offsets.routed({ topic, partition: 0, offset: '10' });
    offsets.routed({ topic, partition: 1, offset: '3' });
    offsets.routed({ topic, partition: 0, offset: '12' });
    await committed;
    expect(commits).toEqual([
      [
        { topic, partition: 0, offset: '12' },
        { topic, partition: 1, offset: '3' },
      ],
    ]);

    // Routed right after a commit: it waits for the interval, gathering what comes meanwhile.
    const second = nextCommit();
    const routedAt = Date.now();
    offsets.routed({ topic, partition: 1, offset: '4' });
    offsets.routed({ topic, partition: 1, offset: '9' });
    await second;
    expect(Date.now() - routedAt).toBeGreaterThanOrEqual(40);
    expect(commits[1]).toEqual([{ topic, partition: 1, offset: '9' }]);
    await offsets.flush();
    expect(commits).toHaveLength(2);
  });

  it('commits what is pending at once on flush', async () => {
    const { offsets, commits } = committer(60_000);
    offsets.routed({ topic, partition: 2, offset: '7' });
    await offsets.flush();
    offsets.routed({ topic, partition: 2, offset: '8' });
    await offsets.flush();
    expect(commits).toEqual([[{ topic, partition: 2, offset: '7' }], [{ topic, partition: 2, offset: '8' }]]);
  });

  it('reports a failed commit and commits the next routed offset instead', async () => {
    let failures = 1;
    const { offsets, commits, errors } = committer(1, () => failures-- > 0);
    offsets.routed({ topic, partition: 0, offset: '5' });
    await offsets.flush();
    expect(errors).toEqual([new Error('coordinator moved')]);
    offsets.routed({ topic, partition: 0, offset: '6' });
    await offsets.flush();
    expect(commits).toEqual([[{ topic, partition: 0, offset: '5' }], [{ topic, partition: 0, offset: '6' }]]);
  });
});
