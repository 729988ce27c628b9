/**
 * Redis pub/sub between gateways: one channel for the whole deployment. The
 * gateway that took an ApproveLink publishes the SHA-256 of the link token
 * (32 bytes, the message as it is), once the directory committed the
 * approval; every gateway wakes its WaitForLink calls for that token, which
 * then read the approval from the directory. Pub/sub delivers at most once,
 * so waiters also poll the directory, slowly.
 */
export const CHANNEL = 'sotto:link-approvals:v1';

export const TOKEN_HASH_BYTES = 32;
