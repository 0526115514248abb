from duochat_boards.models import BoardsBase
from duochat_common.migrations import run_env

run_env(BoardsBase.metadata)
