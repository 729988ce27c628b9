import type { Notice, Profile } from '../profile';

/** Notices go into history, and to whoever listens at the time (a `receive` in progress). */
export class Notices {
  private readonly listeners = new Set<(notice: Notice) => void>();

  constructor(private readonly profile: Profile) {}

  record(notice: Notice): void {
    this.profile.appendHistory(notice);
    for (const listener of this.listeners) listener(notice);
  }

  /** Starts telling `listener` of each notice; the function returned stops it. */
  listen(listener: (notice: Notice) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
