// Building the pages' elements: an element with its properties, and a table's head of column
// headings in the page's language.

/** A new `tag` element with the properties `props` (textContent, className, type, …). */
export function element(tag, props = {}) {
  return Object.assign(document.createElement(tag), props);
}

/**
 * Write the head of `table`: a heading (scope="col") per column, its text the key `column`
 * or `column.key` (data-i18n, filled by i18n.js translate()), with `column.className` if any.
 */
export function tableHead(table, columns) {
  table.createTHead().insertRow().append(...columns.map((column) => {
    const heading = element('th', { scope: 'col' });
    const { key, className } = typeof column === 'string' ? { key: column } : column;
    heading.dataset.i18n = key;
    if (className) heading.className = className;
    return heading;
  }));
}
