from duochat_common.migrations import run_env
from duochat_notify.models import NotifyBase

run_env(NotifyBase.metadata)
