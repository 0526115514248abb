from duochat_auth.models import AuthBase
from duochat_common.migrations import run_env

run_env(AuthBase.metadata)
