// The rows a room shows: day dividers between days, and consecutive messages of one person
// grouped (the name on the first of a group, the time on the last), as chat apps do.
import { i18n } from './i18n/index.js'

const GROUP_GAP_MS = 2 * 60 * 1000 // a pause longer than this starts a new group

function dayKey(d) {
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`
}

export function dayLabel(date, now = new Date()) {
  const { t, d } = i18n.global
  if (dayKey(date) === dayKey(now)) return t('time.today')
  const yesterday = new Date(now)
  yesterday.setDate(now.getDate() - 1)
  if (dayKey(date) === dayKey(yesterday)) return t('time.yesterday')
  return d(date, date.getFullYear() === now.getFullYear() ? 'day' : 'dayYear')
}

function when(item) {
  const d = new Date(item.createdAt)
  return Number.isNaN(d.getTime()) ? new Date() : d
}

// A refused message stands alone, with its reason and actions.
function joins(prev, item) {
  return (
    prev &&
    prev.status !== 'failed' &&
    item.status !== 'failed' &&
    prev.type === 'TALK' &&
    item.type === 'TALK' &&
    prev.sender === item.sender &&
    dayKey(when(prev)) === dayKey(when(item)) &&
    when(item) - when(prev) <= GROUP_GAP_MS
  )
}

// items: the lines to show, in order. Returns [{kind: 'day', key, label}, {kind: 'line', key,
// item, first, last}].
export function timeline(items, now = new Date()) {
  const rows = []
  let day = null
  let prevLine = null
  for (const item of items) {
    const d = when(item)
    const key = dayKey(d)
    if (key !== day) {
      day = key
      rows.push({ kind: 'day', key: `d${key}`, label: dayLabel(d, now) })
      prevLine = null
    }
    const first = !joins(prevLine?.item, item)
    if (!first) prevLine.last = false
    prevLine = { kind: 'line', key: item.key, item, first, last: true }
    rows.push(prevLine)
  }
  return rows
}
