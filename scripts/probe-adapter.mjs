// Exits 0 when the `webgpu` package (Dawn) finds a usable adapter, 1 otherwise.
// Used by setup-webgpu.sh before it decides to install anything.
process.env.XDG_RUNTIME_DIR ??= '/tmp';
try {
  const { create, globals } = await import('webgpu');
  Object.assign(globalThis, globals);
  const adapter = await create([]).requestAdapter();
  if (!adapter) process.exit(1);
  const info = adapter.info ?? {};
  console.log(`webgpu adapter: ${info.vendor ?? '?'} / ${info.device || info.description || '?'} (${info.architecture ?? ''})`);
  process.exit(0);
} catch (e) {
  console.log(`webgpu probe failed: ${e.message}`);
  process.exit(1);
}
