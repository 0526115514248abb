// Light or dark, as the system prefers (prefers-color-scheme), following it live. Bootstrap 5.3
// colours everything from the data-bs-theme attribute; our own colours read its variables.
const query = window.matchMedia?.('(prefers-color-scheme: dark)')

function apply() {
  document.documentElement.dataset.bsTheme = query?.matches ? 'dark' : 'light'
}

export function followSystemTheme() {
  apply()
  query?.addEventListener?.('change', apply)
}
