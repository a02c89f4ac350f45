import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../../../', import.meta.url));

/** Runs the `leffa` CLI from its sources in a child process; resolves with the exit code and what it printed. */
export function runCli(
  ...args: string[]
): Promise<{ code: number | null; stdout: string; stderr: string; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'packages/train/src/cli/main.ts', ...args], {
      cwd: repo,
      env: { ...process.env, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? '/tmp' },
    });
    let [stdout, stderr, output] = ['', '', ''];
    child.stdout.on('data', (d) => {
      stdout += d;
      output += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
      output += d;
    });
    child.on('close', (code) => resolve({ code, stdout, stderr, output }));
  });
}
