/**
 * Aligned plain-text tables for terminal output: columns padded to their
 * widest cell, numbers right-aligned so digits and units line up.
 */

export interface Column {
  header: string;
  /** Right-align (sizes, counts, ratios); default left. */
  right?: boolean;
}

/** Lines of the table: the header row, then one line per row; trailing blanks trimmed. */
export function renderTable(columns: readonly Column[], rows: readonly (readonly string[])[], gap = '  '): string[] {
  const all = [columns.map((c) => c.header), ...rows];
  const widths = columns.map((_, i) => Math.max(...all.map((row) => width(row[i] ?? ''))));
  return all.map((row) =>
    columns
      .map((column, i) => {
        const cell = row[i] ?? '';
        const pad = ' '.repeat(Math.max(0, (widths[i] ?? 0) - width(cell)));
        return column.right === true ? pad + cell : cell + pad;
      })
      .join(gap)
      .trimEnd(),
  );
}

/** Label/value pairs, labels padded to one width (a summary block above a table). */
export function renderPairs(pairs: readonly (readonly [string, string])[], indent = '  '): string[] {
  const labelWidth = Math.max(0, ...pairs.map(([label]) => width(label)));
  return pairs.map(([label, value]) => `${indent}${label.padEnd(labelWidth)}  ${value}`.trimEnd());
}

/** Display width: code points, which is right for the ASCII and Latin text chunkpoint prints (paths may hold more). */
function width(text: string): number {
  return [...text].length;
}
