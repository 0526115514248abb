// Dates and times in the app's language: vue-i18n's datetime formats for dates, and the
// browser's Intl.RelativeTimeFormat for "5 minutes ago" (vue-i18n has no relative times).
import { ref } from 'vue'
import { i18n } from './i18n/index.js'

const { d, locale } = i18n.global

function parse(iso) {
  if (!iso) return null
  const date = iso instanceof Date ? iso : new Date(iso)
  return Number.isNaN(date.getTime()) ? null : date
}

// A clock for relative times, ticking once a minute while anything shows one.
export const now = ref(Date.now())
setInterval(() => {
  now.value = Date.now()
}, 30_000)

// Short local times: "14:05" today, "3 Mar 14:05" otherwise.
export function formatTime(iso) {
  const date = parse(iso)
  if (!date) return ''
  const time = d(date, 'time')
  if (date.toDateString() === new Date().toDateString()) return time
  return `${d(date, 'dayMonth')} ${time}`
}

// The time of day only ("14:05"): a room's day dividers say which day.
export function formatClock(iso) {
  const date = parse(iso)
  return date ? d(date, 'time') : ''
}

// The whole date and time, for a title attribute beside a relative time.
export function formatFull(iso) {
  const date = parse(iso)
  return date ? d(date, 'full') : ''
}

const UNITS = [
  ['year', 365 * 24 * 3600],
  ['month', 30 * 24 * 3600],
  ['week', 7 * 24 * 3600],
  ['day', 24 * 3600],
  ['hour', 3600],
  ['minute', 60],
]

// "just now", "5 minutes ago", "yesterday", "3 weeks ago" in the app's language.
export function relativeTime(iso) {
  const date = parse(iso)
  if (!date) return ''
  const seconds = Math.round((date.getTime() - now.value) / 1000)
  const rtf = new Intl.RelativeTimeFormat(locale.value, { numeric: 'auto' })
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size) return rtf.format(Math.trunc(seconds / size), unit)
  }
  return rtf.format(0, 'second')
}
