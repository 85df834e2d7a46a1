// @ts-check
// The total unread (PROTOCOL-v2 §5's total_unread, the chat list's sum) where
// it shows outside the page: the tab's title, "(3) tidings", and the app
// badge where the browser has one (an installed app's icon).

/** @param {number} total */
export const titleFor = (total) => (total > 0 ? `(${total}) tidings` : "tidings");

let badged = -1; // the first total always sets it: the worker may have left one

/** @param {number} total */
export function showTotal(total) {
  document.title = titleFor(total);
  if (total === badged) return; // every render calls this: the badge only on a change
  badged = total;
  const nav = /** @type {any} */ (navigator);
  // Refused where the page is no installed app: nothing to show then.
  if (total > 0 && nav.setAppBadge) nav.setAppBadge(total).catch(() => {});
  else if (total === 0 && nav.clearAppBadge) nav.clearAppBadge().catch(() => {});
}
