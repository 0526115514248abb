import { createApp } from 'vue'
import 'bootstrap/dist/css/bootstrap.min.css'
import './style.css'
import App from './App.vue'
import { router } from './router.js'
import { i18n } from './i18n/index.js'
import { followSystemTheme } from './theme.js'

followSystemTheme()
createApp(App).use(i18n).use(router).mount('#app')
