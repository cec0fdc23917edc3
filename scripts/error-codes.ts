/**
 * Writes docs/ERRORS.md, the reference of every error code, from the
 * catalogue in src/error-codes.ts, so the published list cannot drift from
 * what chunkpoint throws: the suite fails when the file differs from what
 * this renders (test/errors.test.ts).
 *
 * Run: node dist/scripts/error-codes.js   (after tsc; rewrites docs/ERRORS.md)
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES, type ErrorCode, type ErrorKind } from '../src/error-codes.js';

/** In the order README's table lists them, with the class that carries each. */
const KINDS: { kind: ErrorKind; className: string; about: string }[] = [
  { kind: 'invalid_input', className: 'InvalidInputError', about: 'The caller asked for something impossible: bad arguments, missing paths, an unknown job or checkpoint.' },
  { kind: 'corrupt_data', className: 'CorruptDataError', about: 'Stored bytes failed verification (checksum, hash, format, an unsafe handle), or an object the job root should hold is missing.' },
  { kind: 'store_unavailable', className: 'StoreUnavailableError', about: 'The store could not be reached or refused an operation (I/O error, permissions, disk full, S3 refusals).' },
  { kind: 'conflict', className: 'ConflictError', about: 'Someone else got there first: a checkpoint number already committed, state changed under the operation.' },
  { kind: 'internal', className: 'InternalError', about: 'A bug, an abort, or an environment failure chunkpoint cannot classify (worker crash, invariant broken).' },
];

export function renderErrorCodes(): string {
  const codes = Object.keys(ERROR_CODES) as ErrorCode[];
  const lines = [
    '# Error codes',
    '',
    '<!-- Generated from src/error-codes.ts by scripts/error-codes.ts (node dist/scripts/error-codes.js); do not edit. -->',
    '',
    `Every code chunkpoint reports (${codes.length}), by kind. A \`ChunkpointError\`'s`,
    '`code` is one of these and never changes; its `kind` and class follow from',
    'the code. *Transient* is the default of the error\'s `transient` (whether',
    'trying the same operation again may succeed); an S3 error decides it per',
    'response. Codes marked (command line), (verify) or (stress tooling) come',
    'only from there. The same table is exported as `ERROR_CODES`.',
  ];
  for (const { kind, className, about } of KINDS) {
    lines.push('', `## \`${kind}\` (\`${className}\`)`, '', about, '', '| code | transient | meaning |', '| --- | --- | --- |');
    // The catalogue's order, which groups codes by what they are about (the state directory, the target…).
    for (const code of codes.filter((c) => ERROR_CODES[c].kind === kind)) {
      const spec = ERROR_CODES[code];
      lines.push(`| \`${code}\` | ${spec.transient ? 'yes' : ''} | ${spec.meaning.replaceAll('|', '\\|').replaceAll('<', '&lt;')} |`);
    }
  }
  return `${lines.join('\n')}\n`;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const path = fileURLToPath(new URL('../../docs/ERRORS.md', import.meta.url));
  writeFileSync(path, renderErrorCodes());
  process.stdout.write(`error-codes: wrote ${path} (${Object.keys(ERROR_CODES).length} codes)\n`);
}
