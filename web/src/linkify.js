// Splits a message into text and link parts, so that links render as <a> elements built by Vue
// (never as HTML from the message). Only http(s) addresses, and www. ones (as https), become
// links: a "javascript:" or "data:" text stays text.
const URL_RE = /\b(?:https?:\/\/|www\.)[^\s<>"']+/gi
const TRAILING = /[.,;:!?'"]+$/

export function linkify(text) {
  const parts = []
  let last = 0
  for (const match of text.matchAll(URL_RE)) {
    let url = match[0].replace(TRAILING, '')
    // A closing parenthesis belongs to the sentence unless the address opened one.
    if (url.endsWith(')') && !url.includes('(')) url = url.slice(0, -1)
    const start = match.index
    if (start > last) parts.push({ text: text.slice(last, start) })
    const href = /^www\./i.test(url) ? `https://${url}` : url
    parts.push({ text: url, href })
    last = start + url.length
  }
  if (last < text.length) parts.push({ text: text.slice(last) })
  return parts
}
