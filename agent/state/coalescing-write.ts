/**
 * Serialised, coalescing writes of one state file: while a write is in flight, every later request
 * shares one queued write that starts when the current one ends and snapshots the state at that
 * moment. So a burst of appends costs at most two writes, and the file never sees two writers.
 */
export class CoalescingWrite {
  private inFlight: Promise<void> | null = null;
  private queued: Promise<void> | null = null;

  /** `write` snapshots the state when it is called and writes it whole. */
  constructor(private readonly write: () => Promise<void>) {}

  /** Requests a write that will include every change made before this call. */
  request(): Promise<void> {
    if (this.queued) return this.queued;
    if (!this.inFlight) return this.start();
    this.queued = this.inFlight
      .catch(() => undefined)
      .then(() => {
        this.queued = null;
        return this.start();
      });
    return this.queued;
  }

  /** Resolves when every write requested so far has ended (written or failed). */
  async settled(): Promise<void> {
    await (this.queued ?? this.inFlight ?? Promise.resolve());
  }

  private start(): Promise<void> {
    const write = this.write();
    this.inFlight = write.finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }
}
