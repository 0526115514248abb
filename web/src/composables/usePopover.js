// A menu that opens from a button: a click outside closes it, and Escape closes it and puts
// the focus back on the button that opened it (WCAG 2.4.3, focus order).
import { onBeforeUnmount, onMounted, ref } from 'vue'

export function usePopover() {
  const open = ref(false)
  const root = ref(null) // the element holding both the button and the menu
  const opener = ref(null) // the button

  function close({ focus = false } = {}) {
    if (!open.value) return
    open.value = false
    if (focus) opener.value?.focus()
  }

  function toggle() {
    open.value = !open.value
  }

  function onDocClick(e) {
    if (open.value && root.value && !root.value.contains(e.target)) close()
  }

  function onKey(e) {
    if (e.key === 'Escape' && open.value) {
      e.preventDefault()
      close({ focus: true })
    }
  }

  onMounted(() => {
    document.addEventListener('click', onDocClick)
    document.addEventListener('keydown', onKey)
  })
  onBeforeUnmount(() => {
    document.removeEventListener('click', onDocClick)
    document.removeEventListener('keydown', onKey)
  })

  return { open, root, opener, close, toggle }
}
