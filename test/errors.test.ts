/**
 * The error model's own rules, checked on the tree: the catalogue is the one
 * list of codes (docs/ERRORS.md is generated from it, README and docs/ name
 * only its codes, with its kinds), errors keep class, kind, code and
 * transient wherever they travel, library texts name the API and never the
 * command line, and the CLI's words for API names are real flags and commands.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { renderErrorCodes } from '../scripts/error-codes.js';
import { COMMANDS } from '../src/cli/main.js';
import { CLI_WORDS, inCliWords } from '../src/cli/wording.js';
import { MEDIUM_ERRNOS, isErrorCode } from '../src/error-codes.js';
import {
  ChunkpointError,
  ConflictError,
  CorruptDataError,
  ERROR_CODES,
  InternalError,
  InvalidInputError,
  StoreUnavailableError,
  apiName,
  deserializeError,
  errorOf,
  serializeError,
  withContext,
  type ErrorCode,
  type ErrorKind,
  type SerializedError,
} from '../src/errors.js';
import { REPO_ROOT } from './support.js';

function tsFiles(dir: string): string[] {
  return readdirSync(join(REPO_ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory()) return tsFiles(path);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Every piece of string and template text in a file, with its line; comments are not texts. */
function texts(path: string): { line: number; text: string }[] {
  const source = ts.createSourceFile(path, readFileSync(join(REPO_ROOT, path), 'utf8'), ts.ScriptTarget.Latest, true);
  const out: { line: number; text: string }[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node) || ts.isTemplateHead(node) || ts.isTemplateMiddle(node) || ts.isTemplateTail(node)) {
      out.push({ line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1, text: node.text });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

const COMMAND_NAMES = Object.keys(COMMANDS).join('|');
const CODES = Object.keys(ERROR_CODES) as ErrorCode[];
const CLASSES: Record<ErrorKind, abstract new (...args: never[]) => ChunkpointError> = {
  invalid_input: InvalidInputError,
  corrupt_data: CorruptDataError,
  store_unavailable: StoreUnavailableError,
  conflict: ConflictError,
  internal: InternalError,
};

/** Backquoted tokens shaped like a code (`STATE_DIR_MISSING`, `STATE_*`), minus environment variables (ours, the AWS SDK's, borg's, libuv's, Node's), open(2) flags and the table's own name. */
function codeTokens(text: string): string[] {
  return [...text.matchAll(/`([A-Z][A-Z0-9]*(?:_[A-Z0-9*]+)*)`/g)]
    .map((m) => m[1] as string)
    .filter((t) => !/^(AWS|CHUNKPOINT|BORG|UV|NODE|O)_/.test(t) && t !== 'ERROR_CODES' && (t.includes('_') || isErrorCode(t)));
}

function known(token: string): ErrorCode[] {
  if (!token.endsWith('*')) return isErrorCode(token) ? [token] : [];
  return CODES.filter((c) => c.startsWith(token.slice(0, -1)));
}

describe('the catalogue of error codes', () => {
  it('docs/ERRORS.md is the catalogue as scripts/error-codes.ts renders it (run node dist/scripts/error-codes.js after changing src/error-codes.ts)', () => {
    expect(readFileSync(join(REPO_ROOT, 'docs', 'ERRORS.md'), 'utf8')).toBe(renderErrorCodes());
  });

  it('README and docs/ name only catalogued codes, and README puts each under its kind', () => {
    const docs = ['README.md', ...readdirSync(join(REPO_ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
    const unknown = docs.flatMap((doc) => codeTokens(readFileSync(join(REPO_ROOT, doc), 'utf8')).filter((t) => known(t).length === 0).map((t) => `${doc}: ${t}`));
    expect(unknown).toEqual([]);
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    const rows = [...readme.matchAll(/^\| `(invalid_input|corrupt_data|store_unavailable|conflict|internal)` \| `\w+` \| (.*) \|$/gm)];
    expect(rows.map((r) => r[1])).toEqual(['invalid_input', 'corrupt_data', 'store_unavailable', 'conflict', 'internal']);
    for (const [, kind, examples] of rows) {
      for (const token of codeTokens(examples as string)) {
        // `STATE_*` stands for a family (local I/O in the state directory), not for every code with that prefix.
        const kinds = known(token).map((code) => ERROR_CODES[code].kind);
        if (token.endsWith('*')) expect(kinds, `${token} in README's ${kind} row`).toContain(kind);
        else expect(kinds, `${token} in README's ${kind} row`).toEqual([kind]);
      }
    }
  });

  it('has a code of its own for every errno of the storage medium, in the store and in each local place', () => {
    for (const errno of MEDIUM_ERRNOS) {
      expect(ERROR_CODES[`STORE_${errno}`].kind).toBe('store_unavailable');
      for (const place of ['STATE', 'TARGET', 'CACHE'] as const) expect(ERROR_CODES[`${place}_${errno}`].kind).toBe('invalid_input');
    }
  });

  it('says in one line what each code means', () => {
    for (const code of CODES) expect(ERROR_CODES[code].meaning, code).toMatch(/^[^\n]{10,}$/);
  });

  it('builds every code as its own kind and class, transient as catalogued unless the error says otherwise', () => {
    for (const code of CODES) {
      const error = errorOf(code, 'm');
      expect(error).toBeInstanceOf(CLASSES[ERROR_CODES[code].kind]);
      expect(error).toMatchObject({ code, kind: ERROR_CODES[code].kind, transient: ERROR_CODES[code].transient, name: CLASSES[ERROR_CODES[code].kind].name });
    }
    expect(new StoreUnavailableError('STORE_UNREACHABLE', 'm').transient).toBe(true);
    expect(new StoreUnavailableError('STORE_UNREACHABLE', 'm', { transient: false }).transient).toBe(false);
    expect(new StoreUnavailableError('STORE_S3', 'm', { transient: true }).transient).toBe(true);
  });

  it('keeps class, kind, code, transient and details across the thread boundary and under added context', () => {
    const original = new StoreUnavailableError('STORE_S3', 'S3 failed', { transient: true, details: { where: 's3://b/k' }, cause: Object.assign(new Error('reset'), { code: 'ECONNRESET' }) });
    const back = deserializeError(structuredClone(serializeError(original)));
    expect(back).toBeInstanceOf(StoreUnavailableError);
    expect(back).toMatchObject({ kind: 'store_unavailable', code: 'STORE_S3', transient: true, message: 'S3 failed', details: { where: 's3://b/k' } });
    expect(back.details).not.toHaveProperty('transient');
    expect((back.cause as NodeJS.ErrnoException).code).toBe('ECONNRESET');
    const wrapped = withContext(back, 'fetching a chunk', { pack: 'p' });
    expect(wrapped).toBeInstanceOf(StoreUnavailableError);
    expect(wrapped).toMatchObject({ code: 'STORE_S3', transient: true, message: 'fetching a chunk: S3 failed', details: { where: 's3://b/k', pack: 'p' } });
  });

  it('refuses an error off the wire whose code is not catalogued or not of the kind it came with', () => {
    const wire = (kind: string, code: string): SerializedError => ({ kind, code, message: 'm', transient: false, details: {} }) as unknown as SerializedError;
    expect(deserializeError(wire('conflict', 'NO_SUCH_CODE'))).toMatchObject({ kind: 'internal', code: 'BAD_ERROR_PAYLOAD' });
    expect(deserializeError(wire('invalid_input', 'CHUNK_CORRUPT'))).toMatchObject({ kind: 'internal', code: 'BAD_ERROR_PAYLOAD' });
    expect(deserializeError(wire('odd', 'CHUNK_CORRUPT'))).toMatchObject({ kind: 'internal', code: 'BAD_ERROR_PAYLOAD' });
    expect(deserializeError(wire('corrupt_data', 'CHUNK_CORRUPT'))).toBeInstanceOf(CorruptDataError);
  });
});

describe('command-line wording stays in the CLI', () => {
  it('no library text (src/ outside src/cli/, workers/, sim/) names a flag or a chunkpoint command', () => {
    const library = [...tsFiles('src').filter((f) => !f.startsWith('src/cli/')), ...tsFiles('workers'), ...tsFiles('sim')];
    const flag = /(^|[\s('"])--[a-z]/;
    // `chunkpoint stress` is the harness's own name for what runs it, not advice to the caller.
    const command = new RegExp(`\\bchunkpoint (${COMMAND_NAMES.replace('|stress', '')})\\b`);
    const found = library.flatMap((file) => texts(file).filter((t) => flag.test(t.text) || command.test(t.text)).map((t) => `${file}:${t.line}: ${t.text}`));
    expect(found).toEqual([]);
  });

  it('puts the flag or command for each API name, and leaves other backquoted text alone', () => {
    const message = `restore target /t is not empty; pass an empty directory, ${apiName('keepMatching')} to restore in place, or ${apiName('overwrite')} to replace its contents`;
    expect(inCliWords(message)).toBe('restore target /t is not empty; pass an empty directory, --keep-matching to restore in place, or --overwrite to replace its contents');
    expect(inCliWords(`check ${apiName('store')} and ${apiName('job')}; list them with ${apiName('list()')}`)).toBe("check --store and --job; list them with 'chunkpoint list'");
    expect(inCliWords('a glob `*.sst`, a name `storeX` and a `store` split `sto re`')).toBe('a glob `*.sst`, a name `storeX` and a --store split `sto re`');
  });

  it('every word the CLI puts for an API name is a flag of one of its commands, or one of its commands', () => {
    const flags = new Set(Object.values(COMMANDS).flatMap((c) => Object.keys(c.options).map((name) => `--${name}`)));
    for (const [name, words] of Object.entries(CLI_WORDS)) {
      if (words.startsWith('--')) expect(flags.has(words), `${name} -> ${words}`).toBe(true);
      else expect(words, name).toMatch(new RegExp(`^'chunkpoint (${COMMAND_NAMES})'$`));
    }
  });
});
