"""Notify's Redis key layout.

Every key about one user carries the user's hash tag ``{<id>}``: the push script marks an alarm
pushed, appends it to the user's stream and reads where the user's tabs are, in one step, and on
a Redis Cluster a script may only touch keys of one slot. An instance's inbox is a key of its own.
"""

from __future__ import annotations

from duochat_notify.config import Settings


class Keys:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def user_stream(self, user_id: int) -> str:
        """The user's delivery stream: what ``Last-Event-ID`` replays."""
        return self.settings.key(f"notify:user:{{{user_id}}}")

    def slots(self, user_id: int) -> str:
        """The user's open streams, each tagged with the instance that holds it."""
        return self.settings.key(f"notify:slots:{{{user_id}}}")

    def pushed(self, user_id: int, alarm_id: int) -> str:
        """Set once the alarm is on the user's stream; holds its entry id."""
        return self.settings.key(f"notify:pushed:{{{user_id}}}:{alarm_id}")

    def inbox(self, instance: str) -> str:
        """What an instance's fan-out reads: entries for the users whose tabs it holds."""
        return self.settings.key(f"notify:inbox:{instance}")

    def held(self) -> str:
        """Alarms whose live push waits (presence unknown), scored by when they are due."""
        return self.settings.key("notify:held")
