// The hostile strings of the quoting fuzz, one generator for every test that uses it (the grammar
// check in test/lib/ps.test.ts and PowerShell's own parser in test/powershell-parser.test.ts).

/** Deterministic PRNG so a failure is reproducible from the printed index. */
export function rng(seed: number): () => number {
  return () => {
    seed = (seed * 1664525 + 1013904223) >>> 0;
    return seed / 2 ** 32;
  };
}

// Every quote kind (the five single quotes PowerShell knows and the double ones), backticks,
// subexpressions, statement and pipeline separators, here-string markers, newlines of every kind.
export const NASTY = ["'", '\u2018', '\u2019', '\u201a', '\u201b', "''", '\u2019\u2019', '"', '\u201c', '\u201d', '\u201e', '`', '`\'', "'`", '$', '$(', ')', '$(Remove-Item C:\\)', '${', '}', ';', '|', '||', '&', '&&', '\n', '\r', '\r\n', '#', '<#', '#>', '@', "@'", "'@", '@"', '"@', '\t', ' ', '-', '--%', 'Invoke-Evil', '\u0085', '\u2028', '\u2029', '\ufeff', '\\', '\u00a0', '\u200b'];

/**
 * The i-th hostile string: mostly NASTY pieces, printable ASCII and random Unicode scalars; every
 * 2,500th a 64 KiB string. With `nul`, one case in fifty carries a NUL (which psQuote must refuse).
 */
export function fuzzString(r: () => number, i: number, o: { nul?: boolean } = {}): string {
  if (i % 2500 === 7) return ("x'\u2019$(evil)`;|\n").repeat(Math.ceil(65536 / 14)).slice(0, 65536);
  const n = Math.floor(r() * 40);
  let s = '';
  for (let k = 0; k < n; k++) {
    const pick = r();
    if (pick < 0.5) s += NASTY[Math.floor(r() * NASTY.length)];
    else if (pick < 0.8) s += String.fromCharCode(32 + Math.floor(r() * 95));
    else {
      // A random Unicode scalar value: no lone surrogates (not valid UTF-8), no NUL.
      let cp = 1 + Math.floor(r() * 0x10fffe);
      if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x4e2d;
      s += String.fromCodePoint(cp);
    }
  }
  if (o.nul && i % 50 === 3) s = s.slice(0, n >> 1) + '\0' + s.slice(n >> 1);
  return s;
}
