import { Injectable } from '@nestjs/common';

interface ActiveStream {
  /** Asks the stream to stop taking chunks and let go of the blob. */
  readonly stop: () => void;
  /** Settles once the stream recorded what it stored and closed its writer. */
  readonly released: Promise<void>;
  /** Set once the client is gone (or done) and only the final checkpoint is left. */
  closing: boolean;
}

export interface StreamHandle {
  /** The client is gone or done: only the final checkpoint is left. */
  closing(): void;
  /** The stream recorded what it stored and closed its writer. */
  release(): void;
}

/**
 * The UploadChunks streams of this process, at most one writing each upload.
 * A client that lost its connection reconnects before the server notices the
 * old stream is dead; the new stream stops the old one and waits for it to let
 * go of the blob, so two writers never interleave bytes in one file.
 */
@Injectable()
export class UploadStreams {
  private readonly active = new Map<string, ActiveStream>();

  /** Registers a stream of `upload` once any older stream of it in this process let go. */
  async enter(upload: string, stop: () => void): Promise<StreamHandle> {
    for (let older = this.active.get(upload); older; older = this.active.get(upload)) {
      older.stop();
      await older.released;
    }
    let release!: () => void;
    const stream: ActiveStream = {
      stop,
      released: new Promise<void>((resolve) => (release = resolve)),
      closing: false,
    };
    this.active.set(upload, stream);
    return {
      closing: () => {
        stream.closing = true;
      },
      release: () => {
        if (this.active.get(upload) === stream) this.active.delete(upload);
        release();
      },
    };
  }

  /**
   * Resolves once a stream of `upload` whose client is gone has recorded its
   * final checkpoint, so that what GetUpload reports right after a cut
   * includes everything that stream stored.
   */
  async settled(upload: string): Promise<void> {
    const stream = this.active.get(upload);
    if (stream?.closing) await stream.released;
  }
}
