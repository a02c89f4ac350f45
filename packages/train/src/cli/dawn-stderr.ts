import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/**
 * The two lines Dawn (the `webgpu` package) prints when a Vulkan driver reports more dynamic buffers per pipeline
 * layout than Dawn supports (lavapipe and RADV report 1000000 / 500000) and Dawn clamps them to 16. Dawn writes them
 * from C++ straight to the process's stderr while it enumerates adapters, before any device is requested, and has
 * no setting to silence them; the clamp does not matter here (no kernel uses dynamic offsets).
 */
export const DAWN_LIMIT_CLAMP_WARNING =
  /^Warning: maxDynamic(Uniform|Storage)BuffersPerPipelineLayout artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.$/;

/** Set in the CLI's worker process, so it does not relaunch itself. */
const CHILD_ENV = 'LEFFA_CLI_WORKER';

/** Arguments that only print text (help, version): they never load Dawn, so they need no filtering. */
const textOnly = (args: string[]) =>
  args.length === 0 ||
  args.some((a) => a === '--help' || a === '-h' || a === '--version' || a === '-V' || a === 'help');

/**
 * Runs the CLI in a worker process whose stderr passes through here, every line but Dawn's clamp warnings, so a
 * clean run prints only its own output. Returns false in the worker itself (and for help / version), which then
 * runs the command; returns true in the launching process, which exits with the worker's exit code (a worker
 * killed by a signal is reported with that signal). Ctrl-C reaches both through the terminal: the launcher
 * waits for the worker; SIGTERM and SIGHUP sent to the launcher are passed on to it.
 */
export function relaunchWithoutDawnWarnings(argv = process.argv): boolean {
  if (process.env[CHILD_ENV] === '1' || textOnly(argv.slice(2))) return false;
  const child = spawn(process.execPath, [...process.execArgv, ...argv.slice(1)], {
    stdio: ['inherit', 'inherit', 'pipe'],
    env: { ...process.env, [CHILD_ENV]: '1' },
  });
  const lines = createInterface({ input: child.stderr!, crlfDelay: Infinity });
  lines.on('line', (line) => {
    if (!DAWN_LIMIT_CLAMP_WARNING.test(line)) process.stderr.write(`${line}\n`);
  });
  const ignore = () => {};
  const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
  const handlers: [NodeJS.Signals, () => void][] = [
    ['SIGINT', ignore],
    ['SIGTERM', forward('SIGTERM')],
    ['SIGHUP', forward('SIGHUP')],
  ];
  for (const [s, h] of handlers) process.on(s, h);
  child.on('error', (e) => {
    process.stderr.write(`leffa: cannot start the CLI worker process (${e.message})\n`);
    process.exitCode = 1;
  });
  // 'close' comes after the worker's stderr is drained, so no line is lost.
  child.on('close', (code, signal) => {
    for (const [s, h] of handlers) process.off(s, h);
    if (signal) process.kill(process.pid, signal);
    else process.exitCode = code ?? 1;
  });
  return true;
}
