/**
 * The error model's own rules, checked on the tree: library texts name the
 * API, never the command line, and the CLI's words for API names are real
 * flags and commands.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../src/cli/main.js';
import { CLI_WORDS, inCliWords } from '../src/cli/wording.js';
import { apiName } from '../src/errors.js';
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
