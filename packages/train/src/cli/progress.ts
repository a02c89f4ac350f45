import cliProgress from 'cli-progress';

/** Without a terminal, a progress line is printed at most this often (and whenever new values arrive). */
const PLAIN_INTERVAL_MS = 10_000;

/**
 * A progress bar with named values (loss terms, steps/s, ETA) on a terminal; plain lines on stdout otherwise.
 * `update(done)` moves the bar (call it every step); `update(done, values)` also replaces the shown values, which
 * stay until the next values arrive (losses are read back only every few steps).
 */
export class Progress {
  private readonly bar: cliProgress.SingleBar | null;
  private readonly start = Date.now();
  private last = 0;
  private values: Record<string, number | string> = {};
  private printedAt = Date.now();

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly fields: string[] = [],
    /** Where a resumed run starts: rates and ETA count from here. */
    private readonly first = 0,
    private readonly stream: NodeJS.WriteStream = process.stdout,
  ) {
    this.last = first;
    this.bar = stream.isTTY
      ? new cliProgress.SingleBar(
          {
            format: `${label} [{bar}] {value}/{total} | ${fields.map((f) => `${f} {${f}}`).join(' | ')}${fields.length ? ' | ' : ''}{rate} it/s | ETA {eta_formatted}`,
            hideCursor: true,
            stream,
          },
          cliProgress.Presets.shades_classic,
        )
      : null;
    this.bar?.start(total, first, this.payload());
  }

  private payload() {
    const elapsed = (Date.now() - this.start) / 1000;
    const p: Record<string, string> = { rate: elapsed > 0 ? ((this.last - this.first) / elapsed).toFixed(2) : '0' };
    for (const f of this.fields) {
      const v = this.values[f];
      p[f] = typeof v === 'number' ? v.toPrecision(4) : (v ?? '-');
    }
    return p;
  }

  /** Text of the plain (non-terminal) line for the current state. */
  line(): string {
    const elapsed = (Date.now() - this.start) / 1000;
    const rate = (this.last - this.first) / Math.max(elapsed, 1e-9);
    const eta = rate > 0 ? (this.total - this.last) / rate : 0;
    const parts = this.fields.map(
      (f) =>
        `${f} ${typeof this.values[f] === 'number' ? (this.values[f] as number).toPrecision(4) : (this.values[f] ?? '-')}`,
    );
    return [
      `${this.label} ${this.last}/${this.total}`,
      ...parts,
      `${rate.toFixed(2)} it/s`,
      `ETA ${eta.toFixed(0)}s`,
    ].join(' | ');
  }

  update(done: number, values?: Record<string, number | string>): void {
    this.last = done;
    if (values) this.values = { ...this.values, ...values };
    if (this.bar) {
      this.bar.update(done, this.payload());
      return;
    }
    const now = Date.now();
    if (values || done >= this.total || now - this.printedAt >= PLAIN_INTERVAL_MS) {
      this.printedAt = now;
      this.stream.write(`${this.line()}\n`);
    }
  }

  stop(): void {
    this.bar?.stop();
  }
}
