"""Durable records in SSM Parameter Store: each service's counts before a stop, and the override."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from .ecs import Capacity


class StateStore:
    """One String parameter per service under ``prefix``, holding its pre-stop capacity as JSON."""

    def __init__(self, *, ssm: Any, prefix: str):
        self._ssm = ssm
        self._prefix = prefix.rstrip("/")

    def name_for(self, service: str) -> str:
        return f"{self._prefix}/{service}"

    def get(self, service: str) -> Capacity | None:
        value = self._read(self.name_for(service))
        if value is None:
            return None
        data = json.loads(value)
        return Capacity(
            desired=int(data["desiredCount"]),
            min_capacity=data.get("minCapacity"),
            max_capacity=data.get("maxCapacity"),
        )

    def put(self, service: str, capacity: Capacity, *, at: datetime) -> None:
        value = {
            "desiredCount": capacity.desired,
            "minCapacity": capacity.min_capacity,
            "maxCapacity": capacity.max_capacity,
            "recordedAt": at.isoformat(),
        }
        self._ssm.put_parameter(
            Name=self.name_for(service),
            Value=json.dumps(value),
            Type="String",
            Overwrite=True,
            Description="duochat scheduler: capacity before the last stop",
        )

    def delete(self, service: str) -> None:
        try:
            self._ssm.delete_parameter(Name=self.name_for(service))
        except self._ssm.exceptions.ParameterNotFound:
            pass

    def read_raw(self, name: str) -> str | None:
        """Read any parameter's value (used for the override); None when it does not exist."""
        return self._read(name)

    def _read(self, name: str) -> str | None:
        try:
            reply = self._ssm.get_parameter(Name=name)
        except self._ssm.exceptions.ParameterNotFound:
            return None
        return str(reply["Parameter"]["Value"])
