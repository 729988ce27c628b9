export { CallBatcher, CallBatcherLimits, Outcome } from './call-batcher';
export { GroupCommit, GroupCommitLimits } from './group-commit';
export { SameTurnBatch } from './same-turn';
