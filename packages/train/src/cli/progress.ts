import cliProgress from 'cli-progress';

/** A progress bar with named values (loss terms, steps/s, ETA); plain lines when stdout is not a terminal. */
export class Progress {
  private readonly bar: cliProgress.SingleBar | null;
  private readonly start = Date.now();
  private last = 0;

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly fields: string[] = [],
    /** Where a resumed run starts: rates and ETA count from here. */
    private readonly first = 0,
  ) {
    this.last = first;
    this.bar = process.stdout.isTTY
      ? new cliProgress.SingleBar(
          {
            format: `${label} [{bar}] {value}/{total} | ${fields.map((f) => `${f} {${f}}`).join(' | ')}${fields.length ? ' | ' : ''}{rate} it/s | ETA {eta_formatted}`,
            hideCursor: true,
          },
          cliProgress.Presets.shades_classic,
        )
      : null;
    this.bar?.start(total, 0, this.payload({}));
  }

  private payload(values: Record<string, number | string>) {
    const elapsed = (Date.now() - this.start) / 1000;
    const p: Record<string, string> = { rate: elapsed > 0 ? ((this.last - this.first) / elapsed).toFixed(2) : '0' };
    for (const f of this.fields) {
      const v = values[f];
      p[f] = typeof v === 'number' ? v.toPrecision(4) : (v ?? '-');
    }
    return p;
  }

  update(done: number, values: Record<string, number | string> = {}): void {
    this.last = done;
    if (this.bar) {
      this.bar.update(done, this.payload(values));
      return;
    }
    const elapsed = (Date.now() - this.start) / 1000;
    const rate = (done - this.first) / Math.max(elapsed, 1e-9);
    const eta = rate > 0 ? (this.total - done) / rate : 0;
    const parts = this.fields.map((f) => `${f} ${typeof values[f] === 'number' ? (values[f] as number).toPrecision(4) : (values[f] ?? '-')}`);
    console.log(`${this.label} ${done}/${this.total} | ${parts.join(' | ')} | ${rate.toFixed(2)} it/s | ETA ${eta.toFixed(0)}s`);
  }

  stop(): void {
    this.bar?.stop();
  }
}
