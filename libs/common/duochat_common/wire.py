"""What every service's JSON has in common: camelCase names on the wire, and a user's shape."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    """A body whose fields are camelCase on the wire (``applicant_count`` is ``applicantCount``);
    code may still build it with the Python names."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class UserOut(CamelModel):
    """A user as other users see them."""

    id: int
    username: str
