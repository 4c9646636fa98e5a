// Builds ../build from src/ and onnxruntime-web: `npm ci && npm run build` (see ../README.md).
// The build holds our sources as they are (no bundler), the three onnxruntime-web files a single-threaded
// WASM session needs, and manifest.json (the onnxruntime-web version and the SHA-256 of every source and
// built file), which tests/test_browser_live.py recomputes. The models are not part of the build: the app
// writes them into build/models/ (fer/browser_models.py).
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const build = join(here, "..", "build"), src = join(here, "src");
const ortDir = join(here, "node_modules", "onnxruntime-web");
const ORT_FILES = ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"];
const sha256 = (path) => createHash("sha256").update(readFileSync(path)).digest("hex");

for (const name of readdirSync(build, { withFileTypes: true }).map((d) => d.name).filter((n) => n !== "models")) {
  rmSync(join(build, name), { recursive: true, force: true });
}
mkdirSync(build, { recursive: true });
const sources = {}, files = {};
for (const name of readdirSync(src).sort()) {
  copyFileSync(join(src, name), join(build, name));
  sources[`src/${name}`] = sha256(join(src, name));
  files[name] = sources[`src/${name}`];
}
for (const name of ["package.json", "package-lock.json", "build.mjs"]) sources[name] = sha256(join(here, name));
for (const name of ORT_FILES) {
  copyFileSync(join(ortDir, "dist", name), join(build, name));
  files[name] = sha256(join(build, name));
}
const version = JSON.parse(readFileSync(join(ortDir, "package.json"))).version;
writeFileSync(join(build, "manifest.json"), JSON.stringify({ "onnxruntime-web": version, sources, files }, null, 1) + "\n");
console.log(`built ${Object.keys(files).length} files with onnxruntime-web ${version} into ${build}`);
