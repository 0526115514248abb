// The app's languages (vue-i18n). Korean comes first when the browser prefers it; a choice made
// in the account menu is kept in localStorage and wins over the browser. <html lang> follows.
import { createI18n } from 'vue-i18n'
import en from './en.js'
import ko from './ko.js'

export const LOCALES = [
  { code: 'ko', name: '한국어' },
  { code: 'en', name: 'English' },
]
const KEY = 'duochat.locale'
const CODES = LOCALES.map((l) => l.code)

// The first language in the browser's list that we have, else English.
export function browserLocale(languages = navigator.languages || [navigator.language]) {
  for (const tag of languages) {
    const primary = String(tag || '').toLowerCase().split('-')[0]
    if (CODES.includes(primary)) return primary
  }
  return 'en'
}

function storedLocale() {
  try {
    const v = localStorage.getItem(KEY)
    return CODES.includes(v) ? v : null
  } catch {
    return null
  }
}

const DATES = {
  time: { hour: '2-digit', minute: '2-digit' },
  dayMonth: { day: 'numeric', month: 'short' },
  day: { weekday: 'long', day: 'numeric', month: 'long' },
  dayYear: { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' },
  full: { dateStyle: 'medium', timeStyle: 'short' },
}

export const i18n = createI18n({
  legacy: false,
  locale: storedLocale() || browserLocale(),
  fallbackLocale: 'en',
  messages: { en, ko },
  datetimeFormats: { en: DATES, ko: DATES },
  missingWarn: false,
  fallbackWarn: false,
})

function applyLang(code) {
  document.documentElement.lang = code
}
applyLang(i18n.global.locale.value)

export function setLocale(code) {
  if (!CODES.includes(code)) return
  i18n.global.locale.value = code
  applyLang(code)
  try {
    localStorage.setItem(KEY, code)
  } catch {
    // Private mode: the choice lasts for this page.
  }
}

export function currentLocale() {
  return i18n.global.locale.value
}

// Another tab switched the language: follow it.
window.addEventListener('storage', (e) => {
  if (e.key === KEY && CODES.includes(e.newValue) && e.newValue !== currentLocale()) {
    i18n.global.locale.value = e.newValue
    applyLang(e.newValue)
  }
})
