// sharp's side of bench.derivatives: the photo library's set (a 2000 px q85 preview
// from the original, written to a file as enlarger's preview job writes it, then the
// 64/128/256/512 q80 thumbnails from the preview's bytes) made the way a Node app makes
// it with sharp, on one thread, its cache off.
//
//   node sharp_set.cjs SHARP_MODULE_DIR
//
// Reads the files to make sets of, one path per line on stdin, and answers each with a
// line of JSON, {"ms": …}, the milliseconds it took; at the end of stdin, with the
// process's peak RSS in MB (VmHWM) and sharp's versions. bench.derivatives sends the
// files in turn with the other contenders'.
"use strict";

const fs = require("node:fs/promises");
const readline = require("node:readline");
const { performance } = require("node:perf_hooks");

const [sharpDir] = process.argv.slice(2);
const sharp = require(sharpDir);
sharp.concurrency(1);
sharp.cache(false);

const PREVIEW_SIDE = 2000;
const THUMB_SIDES = [512, 256, 128, 64];

async function makeSet(file) {
  const preview = await sharp(file)
    .rotate()
    .resize(PREVIEW_SIDE, PREVIEW_SIDE, { fit: "inside", withoutEnlargement: true })
    .jpeg({ quality: 85 })
    .toBuffer();
  await fs.writeFile(file.replace(/\.jpg$/, ".sharp-preview.jpg"), preview);
  let total = preview.length;
  for (const side of THUMB_SIDES) {
    const thumb = await sharp(preview)
      .resize(side, side, { fit: "inside", withoutEnlargement: true })
      .jpeg({ quality: 80 })
      .toBuffer();
    total += thumb.length;
  }
  return total;
}

async function main() {
  for await (const file of readline.createInterface({ input: process.stdin })) {
    const start = performance.now();
    await makeSet(file);
    console.log(JSON.stringify({ ms: performance.now() - start }));
  }
  // VmHWM, as the Python contenders read it (maxRSS would count the spawning parent's)
  const status = require("node:fs").readFileSync("/proc/self/status", "utf8");
  const peakMb = Number(status.match(/^VmHWM:\s+(\d+)/m)[1]) / 1024;
  console.log(JSON.stringify({ peak_mb: peakMb, version: sharp.versions }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
