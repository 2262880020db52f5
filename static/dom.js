// Small DOM helpers shared by the dashboard and the admin page. Text only: nothing here parses
// markup, so distributors' and volunteers' text can never become HTML.

/** Makes an element; `props` sets attributes (`class`, `text`, `on…` listeners), and string
 * children become text nodes. Absent children (null, undefined, false) are skipped. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  node.append(...children.filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}
