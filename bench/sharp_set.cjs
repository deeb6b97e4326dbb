// sharp's side of bench.derivatives: the photo library's set (a 2000 px q85 preview
// from the original, written to a file as enlarger's preview job writes it, then the
// 64/128/256/512 q80 thumbnails from the preview's bytes) made the way a Node app makes
// it with sharp, on one thread, its cache off.
//
//   node sharp_set.cjs SHARP_MODULE_DIR ROUNDS FILE...
//
// Prints one line of JSON: the median milliseconds per image (after one warm-up image)
// and the process's peak RSS in MB (VmHWM).
"use strict";

const fs = require("node:fs/promises");
const { performance } = require("node:perf_hooks");

const [sharpDir, roundsArg, ...files] = process.argv.slice(2);
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
  await makeSet(files[0]);
  const times = [];
  for (let round = 0; round < Number(roundsArg); round++) {
    for (const file of files) {
      const start = performance.now();
      await makeSet(file);
      times.push(performance.now() - start);
    }
  }
  times.sort((a, b) => a - b);
  const middle = Math.floor(times.length / 2);
  const median = times.length % 2 ? times[middle] : (times[middle - 1] + times[middle]) / 2;
  // VmHWM, as the Python contenders read it (maxRSS would count the spawning parent's)
  const status = require("node:fs").readFileSync("/proc/self/status", "utf8");
  const peakMb = Number(status.match(/^VmHWM:\s+(\d+)/m)[1]) / 1024;
  console.log(JSON.stringify({ ms: median, peak_mb: peakMb, version: sharp.versions }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
