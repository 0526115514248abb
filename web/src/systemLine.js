// A SYSTEM line in the app's language, from the chat server's `code` and `params`
// (docs/contract.md, "SYSTEM lines"). A line stored before codes existed, or a code this app
// does not know yet, shows the server's English text.
import { i18n } from './i18n/index.js'

const { t, te } = i18n.global

export function systemText(msg) {
  const key = `system.${msg?.code}`
  return msg?.code && te(key, 'en') ? t(key, msg.params || {}) : msg?.message || ''
}
