import lz4 from 'lz4'; import fs from 'node:fs';
for (const file of process.argv.slice(2)) {
  const d = fs.readFileSync(file).subarray(0, 8 << 20);
  const out = Buffer.allocUnsafe(lz4.encodeBound(1 << 20));
  for (let rep = 0; rep < 3; rep++) {
    const t = performance.now(); let tot = 0;
    for (let off = 0; off < d.length; off += 1 << 20) tot += lz4.encodeBlock(d.subarray(off, off + (1 << 20)), out);
    console.log(file, 'MB/s', (8 / ((performance.now() - t) / 1000)).toFixed(0), 'ratio', (d.length / tot).toFixed(2));
  }
}
