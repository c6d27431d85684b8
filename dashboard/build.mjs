// Copy the dashboard's npm dependencies into the Python package's static folder, so that the
// daemon serves them itself and the page works offline.  Run by `make dashboard` after `npm ci`.
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "control", "asymm", "daemon", "static", "vendor");
mkdirSync(out, { recursive: true });
const files = [
  ["three/build/three.module.js", "three.module.js"],
  ["three/build/three.core.js", "three.core.js"],
  ["three/LICENSE", "three.LICENSE"],
];
for (const [from, to] of files) {
  copyFileSync(join(here, "node_modules", from), join(out, to));
}
const version = JSON.parse(readFileSync(join(here, "node_modules", "three", "package.json"), "utf8")).version;
console.log(`dashboard: three ${version} copied to ${out}`);
