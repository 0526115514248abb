from duochat_chat.models import ChatBase
from duochat_common.migrations import run_env

run_env(ChatBase.metadata)
