import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

// The dev server forwards the public API paths to a running backend (the embedded runner by
// default). Keys are regexes so that SPA routes such as /chats are not caught by /chat.
const backend = process.env.DUOCHAT_BACKEND || 'http://127.0.0.1:8000'
const api = { target: backend, changeOrigin: false }

export default defineConfig({
  plugins: [vue()],
  // vue-i18n's bundler build: the Composition API only (no legacy API), no devtools hooks.
  define: {
    __VUE_I18N_FULL_INSTALL__: true,
    __VUE_I18N_LEGACY_API__: false,
    __INTLIFY_PROD_DEVTOOLS__: false,
  },
  server: {
    proxy: {
      '^/auth(/|$)': api,
      '^/boards(/|$)': api,
      '^/chat/': api,
      '^/notify/': api,
      '^/ws-stomp': { ...api, ws: true },
    },
  },
  build: {
    chunkSizeWarningLimit: 600,
    // The "slow plugin" timing note appears whenever the machine is busy; it is noise in CI logs.
    rolldownOptions: { checks: { bundlerTimings: false } },
  },
})
